"""Device choice, seeding and threads: explicit, recorded, never global hidden state."""
from __future__ import annotations

import random

import numpy as np
import torch


def select_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else CPU; asking for CUDA without one is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device: {requested!r} requested but torch sees no CUDA device")
    return torch.device(requested)


def seed_everything(seed: int, device: torch.device) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a generator for sampling on ``device``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def set_threads(threads: int) -> None:
    """Match torch's intra-op threads to what the scheduler granted the job."""
    torch.set_num_threads(max(1, int(threads)))
