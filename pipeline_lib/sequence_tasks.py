"""Sequence tasks from the config: the reward, its mode definition, and the method that adapts to it."""
from __future__ import annotations

import math
from typing import Any

import torch

from pipeline_lib.config import method_config, task_reward
from pipeline_lib.tasks.oracle import ExactModes, ReferenceModes, TanimotoModes, ThresholdModes
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet
from pipeline_lib.domains.sequence.rewards import bitseq_modes, encode
from pipeline_lib.sequence_methods import (
    DQN,
    MCMC,
    SampleTrainer,
    SequenceAmortized,
    SequenceScratch,
    SequenceTask,
    tree_conversion,
)

TRAINERS = {"scratch": SequenceScratch, "mcmc": MCMC, "dqn": DQN}


def bit_projection(env) -> torch.Tensor:
    """Lookup [V+1, k] from word tokens to their bits (pad -> 2, which matches no bit)."""
    words = env.alphabet
    k = len(words[0])
    if any(len(w) != k or set(w) - {"0", "1"} for w in words):
        raise ValueError(f"bit sequences need k-bit word tokens, got alphabet {words[:4]}...")
    table = torch.tensor([[int(c) for c in w] for w in words] + [[2] * k], device=env.device)
    return table


def local_optima(env, reward, top_fraction: float) -> torch.Tensor:
    """Bool mask over ``env.index`` of terminal objects that no single-site substitution improves and
    whose reward is in the top ``top_fraction`` of the exact landscape."""
    x = env.terminal_states()
    r = torch.as_tensor(reward(x), dtype=torch.float32)
    full = torch.full((env.n_states,), -math.inf)
    full[env.index(x)] = r
    best = torch.full_like(r, -math.inf)
    size = env.lengths(x)
    for p in range(env.length):  # loops over positions and tokens, each step a whole-landscape op
        for v in range(env.vocab):
            mutated = x.clone()
            mutated[:, p] = v
            valid = p < size
            best = torch.where(valid, torch.maximum(best, full[env.index(torch.where(valid[:, None], mutated, x))]),
                               best)
    cut = torch.quantile(r, 1 - top_fraction)
    mask = torch.zeros(env.n_states, dtype=torch.bool)
    mask[env.index(x)] = (r >= best) & (r >= cut)
    return mask


def modes_strings_of(entry: dict[str, Any], n_bits: int) -> list[str]:
    """The bitseq reward's mode set (its ``modes`` parameter, else generated from its seed)."""
    params = entry.get("params", {})
    return list(params.get("modes") or bitseq_modes(n_bits, params.get("n_modes", 60), params.get("mode_seed", 0)))


def modes_strings(config: dict[str, Any], env, task: str) -> list[str]:
    return modes_strings_of(config["tasks"][task], env.length * len(env.alphabet[0]))


def make_modes(env, entry: dict[str, Any], reward):
    """The mode counter a task's config describes (config/README.md, tasks.*.modes)."""
    spec = entry.get("modes", {})
    kind = spec.get("kind")
    if kind == "threshold":
        return ThresholdModes(float(spec["threshold"]), int(spec.get("min_distance", 2)))
    if kind == "tanimoto":
        return TanimotoModes(env.smiles, float(spec["threshold"]), float(spec.get("max_similarity", 0.7)))
    if kind == "local_optima":
        return ExactModes(local_optima(env, reward, float(spec.get("top_fraction", 0.01))), env.index)
    if kind == "reference":
        table = bit_projection(env)
        n = env.length * table.shape[1]
        tokens = encode(modes_strings_of(entry, n), env.alphabet, env.length)
        return ReferenceModes(tokens, float(spec.get("delta", 0.1)) * n, lambda x: table[x].flatten(-2))
    raise ValueError(f"tasks.*.modes.kind: expected reference, local_optima, threshold or tanimoto, got {kind!r}")


def make_sequence_task(config: dict[str, Any], env, task: str) -> SequenceTask:
    entry = config["tasks"][task]
    reward = task_reward(config, task, env)
    return SequenceTask(env, reward, make_modes(env, entry, reward), float(entry.get("exponent", 1.0)))


def build_trainer(config: dict[str, Any], env_name: str, task: SequenceTask, method: str, seed: int,
                  device: torch.device, model: OutcomeConditionedGFlowNet | None) -> SampleTrainer:
    entry, cfg = method_config(config, method, env_name)
    if entry["kind"] == "amortized":
        return SequenceAmortized(task, model, cfg, seed, device)
    return TRAINERS[entry["kind"]](task, cfg, seed, device)


def exact_table(config: dict[str, Any], env_name: str, task: SequenceTask, method: str,
                model: OutcomeConditionedGFlowNet) -> tuple[torch.Tensor, dict[str, Any]]:
    """The exact conversion: every outcome is queried once (|Y| reward calls), then no training."""
    _, cfg = method_config(config, method, env_name)
    log_r = task.log_reward(task.env.terminal_states())
    table = tree_conversion(task.env, model, log_r, cfg.flow)
    return table, {"step": 0, "trajectories": 0, "transitions": 0, **task.oracle.row()}
