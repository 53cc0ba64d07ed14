"""Metrics of distributions and of sets of samples, the same columns on every domain."""
from __future__ import annotations

import torch


def distribution_metrics(p_model: torch.Tensor, p_target: torch.Tensor) -> dict[str, float]:
    """L1 distance and KL(target || model) between two distributions over the same outcomes."""
    p_model = p_model.double().clamp(min=0)
    p_target = p_target.double()
    support = p_target > 0
    kl = (p_target[support] * (p_target[support].log() - p_model[support].clamp(min=1e-300).log())).sum()
    # KL >= 0; an exact policy's float32 table can sum to 1 + 1e-8 and give -1e-8, which is round-off
    return {"l1": float((p_model - p_target).abs().sum()), "kl": max(float(kl), 0.0)}


def empirical_l1(env, x: torch.Tensor, target: torch.Tensor) -> float:
    """L1 distance between the empirical distribution of samples ``x`` and ``target`` [S] (enumerable spaces)."""
    counts = torch.bincount(env.index(x).cpu(), minlength=len(target)).double() / max(1, len(x))
    return float((counts - target.double().cpu()).abs().sum())


def top_mean(values: torch.Tensor, k: int) -> float:
    """The mean reward of the ``k`` best distinct objects, objects not found counting 0 (rewards are > 0): with
    fewer than ``k`` found, the mean of those found would reward finding fewer (a collapsed sampler's few good
    objects would beat a search's hundred), and a curve of it could fall as a search finds more."""
    return float(values.topk(min(k, len(values))).values.sum()) / k if len(values) else 0.0


def first_of_each(keys: list) -> list[int]:
    """Indices of the first occurrence of each distinct key, in order (distinct objects of a batch)."""
    return sorted({k: i for i, k in reversed(list(enumerate(keys)))}.values())


# the columns of a final sampler's metrics row beside the labels and a domain's own ``sample_metrics`` (this
# module's ``sample_summary`` at top_k 100, the modes known in all, the empirical and exact L1s): a domain's names
# must differ (the config check refuses a clash, which would overwrite a value in silence)
PIPELINE_METRICS = ("samples", "unique_fraction", "modes_in_samples", "top100_reward", "top100_diversity",
                    "mean_reward", "modes_total", "l1_empirical", "l1", "kl", "outcome_l1", "outcome_l1_exact")


def sample_summary(env, x: torch.Tensor, reward: torch.Tensor, modes, top_k: int = 100) -> dict[str, float]:
    """Metrics of a set of final samples: modes among them (``modes`` is a fresh counter of the task's
    mode definition), top-K mean reward (``top_mean``) and diversity of the distinct objects (``env.object_keys``),
    the unique fraction and the domain's own metrics."""
    first = first_of_each(env.object_keys(x))
    ux, ur = x[first], reward[first]
    modes.update(ux, ur)
    top = ur.topk(min(top_k, len(ur))).indices
    return {"samples": len(x), "unique_fraction": len(first) / max(1, len(x)), "modes_in_samples": modes.count(),
            f"top{top_k}_reward": top_mean(ur, top_k), f"top{top_k}_diversity": env.diversity(ux[top]),
            "mean_reward": float(reward.mean()), **env.sample_metrics(x, ux[top])}
