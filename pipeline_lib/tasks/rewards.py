"""Rewards as the library sees them: a domain's built-in rewards (``env.bind_reward``) or user plug-ins
named by dotted or file path, bound to their parameters, and checked before any job starts.

A plug-in is ``package.module:function`` or ``path/to/file.py:function``; it is called as
``function(objects, **params)`` with ``objects = env.objects(x)`` (grid cells as a long CPU tensor
[B, ndim], strings on sequences, canonical SMILES on molecules) and returns one positive float each.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from pipeline_lib.core.env import described
from pipeline_lib.core.transitions import first_of
from pipeline_lib.tasks.metrics import first_of_each

RewardFn = Callable[[torch.Tensor], torch.Tensor]


class Reward:
    """A reward bound to its parameters. It owns what it caches (``caches``: objects with ``save()``,
    e.g. the RNA oracle's persistent energies), so saving is the owner's call, not a global flush."""

    def __init__(self, fn: RewardFn, caches: tuple | list = ()) -> None:
        self.fn, self.caches = fn, list(caches)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def save(self) -> None:
        """Persist every cache this reward owns (at checkpoints and at the end of a job)."""
        for cache in self.caches:
            cache.save()


def load_callable(spec: str, what: str = "reward") -> Callable[..., Any]:
    """Resolve ``package.module:function`` or ``path/to/file.py:function`` to the function (``what`` it is, for
    messages). A file's folder is appended to the import path, so the file may import a module beside it."""
    if ":" not in spec:
        raise ValueError(f"{what} {spec!r}: expected a registered name of the domain or "
                         "'package.module:function' or 'path/to/file.py:function'")
    target, name = spec.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise FileNotFoundError(f"no such file {path.resolve()}")
            # a helper module beside the file imports (appended: an installed package of the same name wins, and
            # one module name is one module per process, whichever folder it was first found in)
            folder = str(path.resolve().parent)
            if folder not in sys.path:
                sys.path.append(folder)
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except Exception as err:  # noqa: BLE001 - any import failure becomes one clear message
        raise ValueError(f"{what} {spec!r}: cannot import {target!r}: {type(err).__name__}: {err}") from err
    if not callable(getattr(module, name, None)):
        raise ValueError(f"{what} {spec!r}: {target!r} has no callable named {name!r}")
    return getattr(module, name)


def reward_function(name: str, env: Any) -> Callable[..., Any] | None:
    """A plug-in's function (None for a name the domain registers), or a ValueError saying what ``name`` should be:
    a registered name of the domain or a plug-in path that imports."""
    if ":" in name:
        return load_callable(name)
    if name not in env.reward_names():
        raise ValueError(f"reward {name!r} is not a reward of this domain; it takes {env.reward_names()} or a "
                         "plug-in 'package.module:function' or 'path/to/file.py:function'")
    return None


def make_reward(name: str, params: dict[str, Any], env: Any, resources: str | Path = "resources") -> Reward:
    """Bind a reward (the domain's registered name or a plug-in path) to its parameters and environment."""
    return bound_reward(name, reward_function(name, env), params, env, resources)


def bound_reward(name: str, fn: Callable[..., Any] | None, params: dict[str, Any], env: Any,
                 resources: str | Path = "resources") -> Reward:
    """``make_reward`` for a name ``reward_function`` has resolved to ``fn`` (so a plug-in file runs once): a bad
    parameter name or type of a plug-in is a ValueError naming it (its hints are the check)."""
    if fn is None:
        return env.bind_reward(name, dict(params), str(resources))
    from pipeline_lib.domains import check_kwargs

    first = next(iter(inspect.signature(fn).parameters.values()), None)
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL)
    got = None
    if first is None:
        got = "takes no argument"
    elif first.kind not in positional:
        got = f"takes no positional argument (its first is {first})"
    elif first.name in params:
        got = f"takes {first.name!r} first, a key of its params too"
    if got:
        raise ValueError(f"reward {name!r} is called as function(objects, **params), but it {got}; give it a "
                         f"first parameter for the objects, e.g. def {getattr(fn, '__name__', 'reward')}(objects, "
                         f"{', '.join(params) or '...'})")
    check_kwargs(fn, params, given=(first.name,), owner=f"reward {name!r} (called as function(objects, **params))")
    # float64 until ``reward_values`` has checked them, so a value beyond float32's range is named as written

    def compute(x: torch.Tensor) -> torch.Tensor:
        values = _floats(fn(env.objects(x), **params), name, torch.float64)
        if values.shape != (len(x),):
            raise ValueError(f"reward {name!r} returned shape {tuple(values.shape)} for {len(x)} distinct objects; "
                             f"expected ({len(x)},), one value per object")
        return values.cpu()
    return Reward(ObjectValues(env, compute))


class ObjectValues:
    """A plug-in reward computed once per distinct object of a job, as the built-in molecule rewards are: the final
    evaluation and MCMC's sampling re-read objects the oracle already paid for, and batches repeat objects. Where
    the space can be listed, a table over ``env.index`` (NaN: not yet computed; 32 MB at 2^22 states) keeps a
    landscape of millions of objects vectorised; elsewhere a dict keyed by ``env.object_keys``."""

    def __init__(self, env: Any, compute: Callable[[torch.Tensor], torch.Tensor]) -> None:
        from pipeline_lib.core.env import ENUMERABLE

        self.env, self.compute = env, compute
        self.listed = env.capabilities()[ENUMERABLE] is None
        self.table: torch.Tensor | None = None
        self.known: dict[Any, float] = {}

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not len(x):
            return torch.zeros(0, dtype=torch.float64, device=x.device)
        if self.listed:
            return self._listed(x).to(x.device)
        keys = self.env.object_keys(x)
        new = [i for i in first_of_each(keys) if keys[i] not in self.known]
        if new:
            values = self.compute(x[torch.tensor(new, device=x.device)])
            self.known.update(zip((keys[i] for i in new), values.tolist()))
        return torch.tensor([self.known[k] for k in keys], dtype=torch.float64).to(x.device)

    def _listed(self, x: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            self.table = torch.full((self.env.n_states,), float("nan"), dtype=torch.float64)
        index = self.env.index(x).cpu()
        todo = torch.isnan(self.table[index]).nonzero()[:, 0]
        if len(todo):  # the first row of each object not yet computed
            first = first_of(index[todo], len(todo))
            distinct = (first < len(todo)).nonzero()[:, 0]
            self.table[distinct] = self.compute(x[todo[first[distinct]].to(x.device)])
        return self.table[index]


def _floats(values: Any, name: str, dtype: torch.dtype) -> torch.Tensor:
    """What a reward returned as a float tensor, or an error saying what it returned instead."""
    try:
        return torch.as_tensor(values, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as err:
        sample = values
        if isinstance(values, (list, tuple)) and len(values):  # the first value that is not a number
            sample = next((v for v in values if isinstance(v, bool) or not isinstance(v, (int, float))), values[0])
        raise ValueError(f"reward {name!r} returned {type(sample).__name__} values ({sample!r:.40}); "
                         "expected one float per object") from err


def validate_reward(reward: RewardFn, outcomes: torch.Tensor, name: str,
                    describe: Callable[[torch.Tensor], dict] | None = None) -> torch.Tensor:
    """Call ``reward`` on ``outcomes`` and fail clearly on wrong shapes, NaN, inf or values <= 0 (with ``describe``,
    ``env.describe``, naming the first object whose value is wrong)."""
    try:
        values = reward(outcomes)
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"reward {name!r} failed on {len(outcomes)} test outcomes: "
                         f"{type(err).__name__}: {err}") from err
    return reward_values(values, len(outcomes), name, describe, outcomes)


def reward_values(values: Any, n: int, name: str, describe: Callable[[torch.Tensor], dict] | None = None,
                  objects: torch.Tensor | None = None) -> torch.Tensor:
    """What a reward returned for ``n`` objects as float32 [n], refused unless one finite value > 0 per object
    (checked in float32, what the oracle and the losses read); with ``describe`` and ``objects`` the message names
    the first object whose value is wrong."""
    wide = _floats(values, name, torch.float64)
    if wide.shape != (n,):
        raise ValueError(f"reward {name!r} returned shape {tuple(wide.shape)}; expected ({n},), "
                         "one value per outcome")
    values = wide.float()
    lost = torch.isfinite(wide) & (wide > 0) & ~(torch.isfinite(values) & (values > 0))
    if lost.any():
        raise ValueError(f"reward {name!r} returned {wide[lost][0].item():.3g}, which float32 (the oracle's and the "
                         "losses' type) holds as 0 or inf: rewards must lie within about 1.2e-38 to 3.4e38 "
                         "(rescale it, or add a floor)")
    bad = ~(torch.isfinite(values) & (values > 0))
    if bad.any() and describe is not None and objects is not None:
        i = int(bad.nonzero()[0, 0])
        kind = "<= 0" if torch.isfinite(values[i]) else "NaN or infinite"
        raise ValueError(f"reward {name!r} returned {values[i].item()} ({kind}) for the object "
                         f"{described(describe, objects, i)}; rewards must be "
                         "strictly positive and finite everywhere (add a floor, e.g. + 1e-3)")
    if not torch.isfinite(values).all():
        raise ValueError(f"reward {name!r} returned NaN or infinite values")
    if bad.any():
        raise ValueError(f"reward {name!r} returned values <= 0 (min {values.min().item():.3g}); "
                         "rewards must be strictly positive")
    return values
