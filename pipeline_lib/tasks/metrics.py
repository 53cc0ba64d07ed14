"""Metrics: distances between distributions, modes, and sample statistics."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch


def distribution_metrics(p_model: torch.Tensor, p_target: torch.Tensor) -> dict[str, float]:
    """L1 distance and KL(target || model) between two distributions over the same outcomes."""
    p_model = p_model.double().clamp(min=0)
    p_target = p_target.double()
    support = p_target > 0
    kl = (p_target[support] * (p_target[support].log() - p_model[support].clamp(min=1e-300).log())).sum()
    return {"l1": float((p_model - p_target).abs().sum()), "kl": float(kl)}


def sample_metrics(samples: pd.DataFrame, target: pd.DataFrame, top_k: int = 100) -> dict[str, float]:
    """Empirical L1 of the sampled terminal objects, modes found among them, top-K mean reward of the
    unique samples, and how many distinct objects were drawn."""
    n = len(target)
    counts = np.bincount(samples["outcome"].to_numpy(), minlength=n) / len(samples)
    target = target.sort_values("outcome")
    modes = target["is_mode"].to_numpy()
    unique = samples.drop_duplicates("outcome")
    return {"l1_empirical": float(np.abs(counts - target["target_prob"].to_numpy()).sum()),
            "modes_found": int((counts[modes] > 0).sum()), "modes_total": int(modes.sum()),
            "unique_samples": int(len(unique)),
            f"top{top_k}_reward": float(unique["reward"].nlargest(top_k).mean())}
