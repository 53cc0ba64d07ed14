"""Downstream rewards: a registry keyed by name, plus user plug-ins named by dotted or file path.

A reward maps a batch of terminal objects to strictly positive floats. Built-in GridWorld rewards
are written in scaled coordinates u = x / (side - 1) in [0, 1]^d, so one definition fits every
grid size. A plug-in is ``package.module:function`` or ``path/to/file.py:function``; it is called
as ``function(x, **params)`` with ``x`` a long tensor [B, ndim] and must return [B] positive floats.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path
from typing import Any, Callable

import torch

RewardFn = Callable[[torch.Tensor], torch.Tensor]


def corner(x: torch.Tensor, side: int, r0: float = 0.1, r1: float = 0.5, r2: float = 2.0) -> torch.Tensor:
    """The standard hypergrid reward of Bengio et al. (2021): high-reward bands near every corner."""
    d = (x.float() / (side - 1) - 0.5).abs()
    band1 = (d > 0.25).all(dim=-1).float()
    band2 = ((d > 0.3) & (d < 0.4)).all(dim=-1).float()
    return r0 + r1 * band1 + r2 * band2


def ring(x: torch.Tensor, side: int, r0: float = 0.01, radius: float = 0.35, width: float = 0.05,
         center: float = 0.5) -> torch.Tensor:
    """A Gaussian ridge on the sphere of ``radius`` around ``center``: a thin connected mode."""
    dist = (x.float() / (side - 1) - center).norm(dim=-1)
    return r0 + torch.exp(-0.5 * ((dist - radius) / width) ** 2)


def peaks(x: torch.Tensor, side: int, r0: float = 0.01, width: float = 0.06,
          centers: list[list[float]] | None = None, heights: list[float] | None = None) -> torch.Tensor:
    """Isolated Gaussian peaks of different heights: separated modes that a sampler must all find."""
    u = x.float() / (side - 1)
    ndim = u.shape[-1]
    if centers is None:
        centers = [[0.2] * ndim, [0.8] * ndim, [0.2] + [0.8] * (ndim - 1), [0.75] + [0.3] * (ndim - 1)]
    c = torch.tensor(centers, dtype=u.dtype, device=u.device)
    if c.ndim != 2 or c.shape[1] != ndim:
        raise ValueError(f"peaks: centers must be a list of {ndim}-dimensional points, got shape {tuple(c.shape)}")
    h = torch.tensor(heights if heights is not None else [1.0] * len(c), dtype=u.dtype, device=u.device)
    if h.shape != (len(c),):
        raise ValueError(f"peaks: heights must have one value per center ({len(c)}), got {h.tolist()}")
    sq = ((u[:, None, :] - c[None]) ** 2).sum(-1)
    return r0 + (h * torch.exp(-0.5 * sq / width**2)).sum(-1)


REGISTRY: dict[str, Callable[..., torch.Tensor]] = {"corner": corner, "ring": ring, "peaks": peaks}


def load_callable(spec: str) -> Callable[..., Any]:
    """Resolve ``package.module:function`` or ``path/to/file.py:function`` to the function."""
    if ":" not in spec:
        raise ValueError(f"reward {spec!r}: expected a registered name {sorted(REGISTRY)} "
                         "or 'package.module:function' or 'path/to/file.py:function'")
    target, name = spec.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path.resolve()}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except Exception as err:  # noqa: BLE001 - any import failure becomes one clear message
        raise ValueError(f"reward {spec!r}: cannot import {target!r}: {type(err).__name__}: {err}") from err
    if not callable(getattr(module, name, None)):
        raise ValueError(f"reward {spec!r}: {target!r} has no callable named {name!r}")
    return getattr(module, name)


def tfbind_table(resources: str | Path, landscape: str) -> Path:
    """Where the prepare step puts the TF-Bind-8 table of ``landscape`` (e.g. SIX6_REF_R1)."""
    return Path(resources) / "tfbind8" / f"{landscape}_8mers.txt"


def make_reward(name: str, params: dict[str, Any], env: Any, resources: str | Path = "resources") -> RewardFn:
    """Bind a reward (registered name or plug-in path) to its parameters and the environment.

    On sequence domains a plug-in receives the decoded strings (``list[str]``), on molecules the
    canonical SMILES, and returns one float per object; registered sequence rewards work on token
    tensors directly.
    """
    from pipeline_lib.domains.sequence.rewards import SEQUENCE_REWARDS

    if hasattr(env, "smiles"):
        from pipeline_lib.domains.molecule.chem import MOLECULE_REWARDS, molecule_reward
        kind, own = "molecule", MOLECULE_REWARDS
    elif hasattr(env, "alphabet"):
        kind, own = "sequence", SEQUENCE_REWARDS
    else:
        kind, own = "hypergrid", REGISTRY
    if name not in own and ":" not in name:
        raise ValueError(f"reward {name!r} is not a {kind} reward; this environment takes {sorted(own)} or a "
                         "plug-in 'package.module:function' or 'path/to/file.py:function'")
    if name not in own:
        fn = load_callable(name)
        if kind == "hypergrid":
            return lambda x: fn(x, **params)
        return lambda x: torch.as_tensor(fn(env.objects(x), **params), dtype=torch.float32, device=x.device)
    if kind == "hypergrid":
        return lambda x: REGISTRY[name](x, side=env.side, **params)
    if kind == "molecule":
        try:
            fn = molecule_reward(name, params)
        except TypeError as err:
            raise ValueError(f"reward {name!r}: bad params {params}: {err}") from err
        return lambda x: torch.as_tensor(fn(env.smiles(x)), dtype=torch.float32, device=x.device)
    params = dict(params)
    if name == "tfbind":
        if "landscape" not in params:
            raise ValueError("reward 'tfbind' needs params.landscape, e.g. SIX6_REF_R1")
        params["table"] = str(tfbind_table(resources, params.pop("landscape")))
    return lambda x: SEQUENCE_REWARDS[name](x, env.alphabet, **params)


def validate_reward(reward: RewardFn, outcomes: torch.Tensor, name: str) -> torch.Tensor:
    """Call ``reward`` on ``outcomes`` and fail clearly on wrong shapes, NaN, inf or values <= 0."""
    try:
        values = reward(outcomes)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"reward {name!r} failed on {len(outcomes)} test outcomes: "
                         f"{type(err).__name__}: {err}") from err
    values = torch.as_tensor(values)
    if values.shape != (len(outcomes),):
        raise ValueError(f"reward {name!r} returned shape {tuple(values.shape)}; expected ({len(outcomes)},), "
                         "one value per outcome")
    if not torch.isfinite(values).all():
        raise ValueError(f"reward {name!r} returned NaN or infinite values")
    if (values <= 0).any():
        raise ValueError(f"reward {name!r} returned values <= 0 (min {values.min().item():.3g}); "
                         "rewards must be strictly positive")
    return values.float()


class CountingReward:
    """Wraps a reward oracle to count calls: total evaluations and distinct objects queried."""

    def __init__(self, reward: RewardFn, key: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.reward, self.key = reward, key
        self.calls = 0
        self._seen: set[int] = set()

    @property
    def unique_calls(self) -> int:
        return len(self._seen)

    def state_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "seen": sorted(self._seen)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self._seen = state["calls"], set(state["seen"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += len(x)
        self._seen.update(self.key(x).tolist())
        return self.reward(x)


def log_reward_table(reward: RewardFn, outcomes: torch.Tensor, name: str) -> torch.Tensor:
    """log R over every outcome of an enumerable space, validated."""
    return validate_reward(reward, outcomes, name).log()


def mode_mask(log_r: torch.Tensor, mode_fraction: float) -> torch.Tensor:
    """Grid modes: outcomes whose reward is at least ``mode_fraction`` times the maximum."""
    return log_r >= log_r.max() + math.log(mode_fraction)
