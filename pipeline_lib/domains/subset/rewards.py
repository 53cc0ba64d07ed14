"""Set rewards: functions of the membership vector x [B, n] (long 0/1), strictly positive."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch


def weights(x: torch.Tensor, seed: int = 0, beta: float = 4.0, floor: float = 1e-3) -> torch.Tensor:
    """exp(beta * mean of the chosen items' weights) + floor, with one weight per item drawn uniformly
    from [-1, 1] by a generator seeded with ``seed`` (a modular reward: its modes are the best sets)."""
    if not floor > 0:
        raise ValueError(f"floor must be > 0 so that rewards stay strictly positive, got {floor}")
    # drawn on the CPU (the same weights on any device), then moved to the sets' device
    w = (torch.rand(x.shape[1], generator=torch.Generator().manual_seed(seed)) * 2 - 1).to(x.device)
    size = x.sum(-1).clamp(min=1).float()
    return torch.exp(beta * (x.float() @ w) / size) + floor


REWARDS: dict[str, Callable[..., torch.Tensor]] = {"weights": weights}


def bind(name: str, params: dict[str, Any], env, resources: str | Path):
    """A registered set reward bound to its parameters; KeyError if unknown."""
    from pipeline_lib.domains import check_kwargs
    from pipeline_lib.tasks.rewards import Reward

    fn = REWARDS[name]
    check_kwargs(fn, params, given=("x",), owner=f"reward {name!r}")
    fn(env.initial_states(1), **params)  # bad values fail here, with the reward's own message
    return Reward(lambda x: fn(x, **params))


def data_files(name: str, params: dict[str, Any], resources: str | Path) -> list[Path]:
    return []


def fetch(path: str | Path) -> None:
    raise ValueError(f"set rewards fetch no data ({path})")


def reference_modes(name: str, params: dict[str, Any], env):
    raise ValueError(f"reward {name!r} has no mode set of its own")
