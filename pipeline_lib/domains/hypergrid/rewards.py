"""GridWorld rewards, written in scaled coordinates u = x / (side - 1) in [0, 1]^d so that one
definition fits every grid size. Each maps cells [B, ndim] to [B] strictly positive floats."""
from __future__ import annotations

from typing import Any, Callable

import torch


def _positive(**values: float) -> None:
    """``r0`` is every cell's floor (rewards stay strictly positive) and a ``width`` of 0 divides by 0."""
    for key, value in values.items():
        if not value > 0:
            raise ValueError(f"{key}: expected a number > 0, got {value!r}")


def corner(x: torch.Tensor, side: int, r0: float = 0.1, r1: float = 0.5, r2: float = 2.0) -> torch.Tensor:
    """The standard hypergrid reward of Bengio et al. (2021): high-reward bands near every corner."""
    _positive(r0=r0)
    d = (x.float() / (side - 1) - 0.5).abs()
    band1 = (d > 0.25).all(dim=-1).float()
    band2 = ((d > 0.3) & (d < 0.4)).all(dim=-1).float()
    return r0 + r1 * band1 + r2 * band2


def ring(x: torch.Tensor, side: int, r0: float = 0.01, radius: float = 0.35, width: float = 0.05,
         center: float = 0.5) -> torch.Tensor:
    """A Gaussian ridge on the sphere of ``radius`` around ``center``: a thin connected mode."""
    _positive(r0=r0, width=width)
    dist = (x.float() / (side - 1) - center).norm(dim=-1)
    return r0 + torch.exp(-0.5 * ((dist - radius) / width) ** 2)


def peaks(x: torch.Tensor, side: int, r0: float = 0.01, width: float = 0.06,
          centers: list[list[float]] | None = None, heights: list[float] | None = None) -> torch.Tensor:
    """Isolated Gaussian peaks of different heights: separated modes that a sampler must all find."""
    _positive(r0=r0, width=width)
    u = x.float() / (side - 1)
    ndim = u.shape[-1]
    if centers is None:  # on a line the four corners' pattern would put two peaks on 0.2 and two near 0.8
        centers = ([[0.2], [0.5], [0.8]] if ndim == 1 else
                   [[0.2] * ndim, [0.8] * ndim, [0.2] + [0.8] * (ndim - 1), [0.75] + [0.3] * (ndim - 1)])
    c = torch.tensor(centers, dtype=u.dtype, device=u.device)
    if c.ndim != 2 or c.shape[1] != ndim:
        raise ValueError(f"peaks: centers must be a list of {ndim}-dimensional points, got shape {tuple(c.shape)}")
    h = torch.tensor(heights if heights is not None else [1.0] * len(c), dtype=u.dtype, device=u.device)
    if h.shape != (len(c),):
        raise ValueError(f"peaks: heights must have one value per center ({len(c)}), got {h.tolist()}")
    sq = ((u[:, None, :] - c[None]) ** 2).sum(-1)
    return r0 + (h * torch.exp(-0.5 * sq / width**2)).sum(-1)


REWARDS: dict[str, Callable[..., torch.Tensor]] = {"corner": corner, "ring": ring, "peaks": peaks}


def data_files(name: str, params: dict[str, Any], resources: str) -> list:
    """Grid rewards read no fetched data."""
    return []


def bind(name: str, params: dict[str, Any], env, resources: str):
    """A registered grid reward bound to its parameters and the grid's side; KeyError if unknown."""
    from pipeline_lib.domains import check_kwargs
    from pipeline_lib.tasks.rewards import Reward

    fn = REWARDS[name]
    check_kwargs(fn, params, given=("x", "side"), owner=f"reward {name!r}")
    fn(env.initial_states(1), side=env.side, **params)  # bad values fail here, with the reward's own message
    return Reward(lambda x: fn(x, side=env.side, **params))


def fetch(path: str) -> None:
    raise ValueError(f"grid rewards fetch no data ({path})")


def reference_modes(name: str, params: dict, env):
    """This domain's rewards have no mode set of their own."""
    raise ValueError(f"reward {name!r} has no mode set of its own")
