"""Outcomes as abstractions, y = phi(x) (beyond the paper): a descriptor maps each object to a tuple of
bins, so many objects share an outcome and reaching one is a search problem no reachability test answers.

A descriptor is named in the config (``envs.NAME.descriptor``) like a reward: a built-in of the domain
(``DESCRIPTORS`` in ``domains/<name>/descriptors.py``: molecules ``properties``; sequences ``composition``
and ``peptide``) or a plug-in ``package.module:function`` / ``path/to/file.py:function``, called as
``function(objects, **params)`` on ``env.objects(x)`` and returning raw values [N, k] (floats). The bins of
dimension i are cut at ``edges[i]`` (sorted): bin j holds values in [edges[j-1], edges[j]), the first and
the last bins are open-ended, so every object has an outcome. A flat index orders outcomes row-major.
"""
from __future__ import annotations

import importlib
import inspect
import math
from typing import Any, Callable

import numpy as np
import torch

from pipeline_lib.tasks.rewards import load_callable

ValuesFn = Callable[[list], np.ndarray]


class Descriptor:
    """phi(x) for one environment: raw values per dimension, their bins, and the outcome space Y (every bin
    tuple). Raw values are cached by object key (RDKit descriptors cost about a millisecond per molecule)."""

    def __init__(self, name: str, dims: list[str], edges: list[list[float]], fn: ValuesFn, env=None) -> None:
        if len(dims) != len(edges) or not dims:
            raise ValueError(f"descriptor {name!r}: expected one list of edges per dimension {dims}, got {edges}")
        for dim, cut in zip(dims, edges):
            if not cut or any(b <= a for a, b in zip(cut, cut[1:])):
                raise ValueError(f"descriptor {name!r}: edges of {dim!r} must be a non-empty strictly increasing "
                                 f"list, got {cut}")
        self.name, self.dims, self.fn, self.env = name, list(dims), fn, env
        self.edges = [[float(v) for v in cut] for cut in edges]
        self.bins = [len(cut) + 1 for cut in self.edges]
        self.size = math.prod(self.bins)  # |Y|
        self.width = sum(self.bins)  # the one-hot outcome input of the OC-GFN
        # on the environment's device, where outcomes are indexed (on CUDA a copy from the CPU would wait for the
        # queued kernels, and rollouts index outcomes at every step)
        device = getattr(env, "device", "cpu")
        self._radix = torch.tensor([math.prod(self.bins[i + 1:]) for i in range(len(self.bins))], device=device)
        self._bins = torch.tensor(self.bins, device=device)
        self._cache: dict[Any, np.ndarray] = {}

    # --- objects to outcomes ---
    def values_of(self, objects: list) -> np.ndarray:
        """Raw values [N, k] of objects as a reward plug-in receives them (no cache)."""
        values = np.asarray(self.fn(objects), dtype=np.float64).reshape(len(objects), -1)
        if values.shape[1] != len(self.dims):
            raise ValueError(f"descriptor {self.name!r} returned {values.shape[1]} values per object; expected "
                             f"{len(self.dims)} ({self.dims})")
        if not np.isfinite(values).all():
            raise ValueError(f"descriptor {self.name!r} returned NaN or infinite values")
        return values

    def values(self, states: torch.Tensor) -> np.ndarray:
        """Raw values [N, k] of a batch of terminal states of ``self.env``."""
        keys = self.env.object_keys(states)
        new = {k: i for i, k in enumerate(keys) if k not in self._cache}
        if new:
            rows = list(new.values())
            objects = self.env.objects(states[torch.tensor(rows, device=states.device)])
            for key, row in zip(new, self.values_of(objects)):
                self._cache[key] = row
        return np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, len(self.dims)))

    def binned(self, values: np.ndarray) -> torch.Tensor:
        """Long [N, k] bins of raw values."""
        cols = [np.searchsorted(np.asarray(cut), values[:, i], side="right") for i, cut in enumerate(self.edges)]
        return torch.as_tensor(np.stack(cols, 1) if len(values) else np.zeros((0, len(self.dims))), dtype=torch.long)

    def outcomes(self, states: torch.Tensor) -> torch.Tensor:
        """y = phi(x): long [N, k] on the states' device."""
        return self.binned(self.values(states)).to(states.device)

    def state_features(self, states: torch.Tensor) -> torch.Tensor:
        """Float [N, feature_width]: phi of partial objects as a network input (``state_descriptor``): the
        one-hot bins, then each raw value scaled by its edges, (v - first) / (last - first) clipped to [-2, 3]
        (an MLP reads where in a bin a value sits). The initial state is no object: zeros."""
        out = torch.zeros(len(states), self.feature_width, device=states.device)
        rows = (~self.env.is_initial(states)).nonzero()[:, 0]
        if not len(rows):
            return out
        try:
            values = self.values(states[rows])
        except ValueError as err:
            raise ValueError(f"descriptor {self.name!r} on partial objects ({err}); the classifier's "
                             "state_descriptor reads phi of every state: set state_descriptor: false") from err
        scaled = [(values[:, d] - cut[0]) / ((cut[-1] - cut[0]) or 1.0) for d, cut in enumerate(self.edges)]
        scaled = torch.as_tensor(np.clip(np.stack(scaled, 1), -2.0, 3.0), dtype=torch.float32)
        out[rows] = torch.cat([self.one_hot(self.binned(values)), scaled], -1).to(states.device)
        return out

    @property
    def feature_width(self) -> int:
        return self.width + len(self.dims)

    # --- the outcome space ---
    def index(self, y: torch.Tensor) -> torch.Tensor:
        return (y * self._radix.to(y.device)).sum(-1)

    def from_index(self, idx: torch.Tensor) -> torch.Tensor:
        return (idx[:, None] // self._radix.to(idx.device)) % self._bins.to(idx.device)

    def all_outcomes(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return self.from_index(torch.arange(self.size, device=device))

    def one_hot(self, y: torch.Tensor) -> torch.Tensor:
        """Float [N, width]: one one-hot block per dimension (the OC-GFN's outcome features)."""
        return torch.cat([torch.nn.functional.one_hot(y[:, i], b) for i, b in enumerate(self.bins)], -1).float()

    def interval(self, dim: int, b: int) -> tuple[float, float]:
        """The raw-value range [low, high) of bin ``b`` of dimension ``dim`` (infinite at the ends)."""
        cut = self.edges[dim]
        return (-math.inf if b == 0 else cut[b - 1], math.inf if b == len(cut) else cut[b])

    def label(self, dim: int, b: int) -> str:
        low, high = self.interval(dim, b)
        return f"[{low:g}, {high:g})"

    # --- windows: "objects with descriptors in this range" ---
    def window_outcomes(self, window: dict[str, list[float]]) -> torch.Tensor:
        """Bool [|Y|]: the outcomes whose bins lie inside ``window`` ({dim: [low, high]} on raw values; a
        dimension left out is free; the end bins are open, so only an infinite bound, YAML's .inf, holds
        them). A window that contains no whole bin of some dimension is an error."""
        unknown = sorted(set(window) - set(self.dims))
        if unknown:
            raise ValueError(f"window dimensions {unknown}: expected some of {self.dims}")
        ys, inside = self.all_outcomes(), torch.ones(self.size, dtype=torch.bool)
        for name, bounds in window.items():
            inside &= torch.isin(ys[:, self.dims.index(name)], torch.tensor(self._window_bins(name, bounds)))
        return inside

    def in_window(self, values: np.ndarray, window: dict[str, list[float]]) -> np.ndarray:
        """Bool [N]: raw values whose outcome is one of the window's (``window_outcomes``): on every dimension it
        names, their bin is one of the whole bins inside it. Bins are half-open, so a value on the window's upper
        bound lies in the bin above it, outside (a test on the raw bounds would count it in)."""
        bins, ok = self.binned(values).numpy(), np.ones(len(values), dtype=bool)
        for name, bounds in window.items():
            d = self.dims.index(name)
            ok &= np.isin(bins[:, d], self._window_bins(name, bounds)) & ~np.isnan(values[:, d])
        return ok

    def _window_bins(self, name: str, bounds: list[float]) -> list[int]:
        """The bins of dimension ``name`` that lie whole inside [low, high]; none is an error."""
        (low, high), d = bounds, self.dims.index(name)
        ok = [b for b in range(self.bins[d]) if low <= self.interval(d, b)[0] and self.interval(d, b)[1] <= high]
        if not ok:
            raise ValueError(f"window {name}: [{low}, {high}] contains no whole bin; the bins of {name!r} are "
                             f"{[self.label(d, b) for b in range(self.bins[d])]}")
        return ok


def make_descriptor(spec: dict[str, Any], env) -> Descriptor:
    """The descriptor an environment's ``descriptor`` entry names: ``{name, params, edges: {dim: [...]}}``;
    a plug-in also lists its ``dims`` and must give the edges of every one."""
    name, params, edges = spec["name"], dict(spec.get("params", {})), dict(spec.get("edges", {}))
    if ":" in name:
        fn = load_callable(name, "descriptor")
        dims = list(spec.get("dims") or [])
        if not dims:
            raise ValueError(f"descriptor {name!r}: a plug-in descriptor needs dims: [the name of each value]")
        missing = [d for d in dims if d not in edges]
        if missing:
            raise ValueError(f"descriptor {name!r}: edges missing for {missing}; a plug-in gives edges: {{dim: "
                             f"[increasing cut points]}} for every dimension")
        return Descriptor(name, dims, [edges[d] for d in dims], lambda objects: fn(objects, **params), env)
    builtins = domain_descriptors(env)
    if name not in builtins:
        raise ValueError(f"descriptor {name!r}: this domain's built-in descriptors are {sorted(builtins)}; or name a "
                         f"plug-in 'package.module:function' or 'path/to/file.py:function'")
    if spec.get("dims"):
        subset = ("keeps a subset of its dimensions with params: {dims: " + str(list(spec["dims"])) + "}"
                  if "dims" in inspect.signature(builtins[name]).parameters else "has fixed dimensions")
        raise ValueError(f"descriptor {name!r}: dims lists a plug-in's values; this built-in {subset}")
    try:
        dims, defaults, fn = builtins[name](**params)
    except TypeError as err:
        raise ValueError(f"descriptor {name!r}: bad params {params}: {err}") from err
    unknown = sorted(set(edges) - set(dims))
    if unknown:
        raise ValueError(f"descriptor {name!r}: edges for unknown dimensions {unknown}; it has {dims}")
    return Descriptor(name, dims, [edges.get(d, defaults[d]) for d in dims], fn, env)


def domain_descriptors(env) -> dict[str, Callable]:
    """The built-in descriptors of an environment's domain (none where it names no module)."""
    module = getattr(env, "descriptors_module", None)
    return dict(importlib.import_module(module).DESCRIPTORS) if module else {}


def binned_reward(objects: list, descriptor: str, prefer: dict[str, list[float]], params: dict | None = None,
                  edges: dict[str, list[float]] | None = None, dims: list[str] | None = None) -> np.ndarray:
    """A reward that is a function of phi alone (a plug-in: ``pipeline_lib.descriptors:binned_reward``):
    exp(sum over the dimensions in ``prefer`` of the weight of the object's bin). Its exact conversion needs
    one reward call per outcome (methods/outcome_conversion.py). ``descriptor`` names a built-in of the
    molecule or sequence domain, or a plug-in with its ``dims`` and ``edges``."""
    desc = _standalone(descriptor, params or {}, edges or {}, dims)
    unknown = sorted(set(prefer) - set(desc.dims))
    if unknown:
        raise ValueError(f"prefer: unknown dimensions {unknown}; descriptor {descriptor!r} has {desc.dims}")
    y = desc.binned(desc.values_of(list(objects)))
    total = np.zeros(len(objects))
    for name, weights in prefer.items():
        d = desc.dims.index(name)
        if len(weights) != desc.bins[d]:
            raise ValueError(f"prefer.{name}: expected {desc.bins[d]} weights (one per bin), got {len(weights)}")
        total += np.asarray(weights, dtype=np.float64)[y[:, d].numpy()]
    return np.exp(total)


def _standalone(name: str, params: dict, edges: dict, dims: list[str] | None) -> Descriptor:
    """A descriptor without an environment (a reward plug-in sees objects only): built-ins are looked up in
    the sequence and molecule domains."""
    if ":" in name:
        return make_descriptor({"name": name, "params": params, "edges": edges, "dims": dims}, None)
    for module in ("pipeline_lib.domains.molecule.descriptors", "pipeline_lib.domains.sequence.descriptors"):
        found = importlib.import_module(module).DESCRIPTORS
        if name in found:
            class Holder:
                descriptors_module = module
            return make_descriptor({"name": name, "params": params, "edges": edges, "dims": dims}, Holder())
    raise ValueError(f"descriptor {name!r}: no built-in of that name")
