"""What counts as a mode of a task (config ``tasks.*.modes``), one definition per kind for every domain.

A mode counter sees each distinct object once, when the oracle first queries it (``update``), so
``modes_found`` means "modes among the distinct objects whose reward was queried" everywhere.
Kinds (config/README.md):
- ``relative``: objects whose reward is at least ``fraction`` of the maximum of the exact landscape
  (enumerable spaces; the GridWorld default);
- ``local_optima``: objects no single neighbour improves (substitutions on sequences, unit steps on
  grids) within the top ``top_fraction`` of the exact landscape (enumerable spaces);
- ``reference``: the reward's own reference objects (the bitseq mode set M); reference m is found
  when a queried x lies within Hamming distance ``delta`` (a fraction of the bits) of m;
- ``threshold``: reward >= ``threshold`` and the environment's distance >= ``min_distance`` from every
  mode already counted, in order of discovery;
- ``tanimoto``: molecules with reward >= ``threshold`` whose Tanimoto similarity to every mode
  already counted is below ``max_similarity`` (0.7), in order of discovery.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch

from pipeline_lib.core.env import ENUMERABLE, MOLECULES, NEIGHBOURS, missing

MODE_KINDS = ("relative", "local_optima", "reference", "threshold", "tanimoto")
NEEDS = {"relative": (ENUMERABLE,), "local_optima": (ENUMERABLE, NEIGHBOURS), "reference": (),
         "threshold": (), "tanimoto": (MOLECULES,)}
DEFAULT = {"kind": "relative", "fraction": 0.5}
# the keys each kind reads: a key of another kind (threshold on a relative definition) would be ignored in silence
KEYS = {"relative": ("fraction",), "local_optima": ("top_fraction",), "reference": ("delta",),
        "threshold": ("threshold", "min_distance"), "tanimoto": ("threshold", "max_similarity")}


def _hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a[:, None, :] != b[None, :, :]).sum(-1)


class ReferenceModes:
    """Reference objects found within ``radius`` (Hamming distance in ``project``-ed space)."""

    def __init__(self, references: torch.Tensor, radius: float,
                 project: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> None:
        self.project, self.radius = project, radius
        self.objects = references  # the reference objects themselves (listed in the task's target table)
        self.references = project(references)
        self.found = torch.zeros(len(references), dtype=torch.bool)

    @property
    def total(self) -> int:
        return len(self.references)

    def flags(self, x: torch.Tensor) -> torch.Tensor:
        """Which of ``x`` are reference modes themselves."""
        return (_hamming(x.cpu(), self.objects.cpu()) == 0).any(1)

    def listed(self) -> torch.Tensor | None:
        """The modes known before any search: the references."""
        return self.objects

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        near = _hamming(self.project(x).cpu(), self.references.cpu()) <= self.radius
        self.found |= near.any(0)

    def count(self) -> int:
        return int(self.found.sum())

    def state_dict(self) -> dict[str, Any]:
        return {"found": self.found}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.found = state["found"]


class ExactModes:
    """A precomputed boolean mode mask over outcome indices (enumerable spaces)."""

    def __init__(self, mask: torch.Tensor, index: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.mask, self.index = mask.cpu(), index
        self.found = torch.zeros_like(self.mask)

    @property
    def total(self) -> int:
        return int(self.mask.sum())

    def flags(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask[self.index(x).cpu()]

    def listed(self) -> torch.Tensor | None:
        return None  # every object of the (enumerable) space is listed with its flag

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        idx = self.index(x).cpu()
        self.found[idx] |= self.mask[idx]

    def count(self) -> int:
        return int(self.found.sum())

    def state_dict(self) -> dict[str, Any]:
        return {"found": self.found}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.found = state["found"]


class FoundInSearch:
    """Modes known only once found, in order of discovery: none can be listed or flagged in advance."""

    def flags(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), dtype=torch.bool)

    def listed(self) -> torch.Tensor | None:
        return None


class ThresholdModes(FoundInSearch):
    """Objects above a reward threshold, at least ``min_distance`` (the environment's distance: Hamming on
    sequences, L1 on grids) from every mode counted before, in order of discovery."""

    def __init__(self, threshold: float, min_distance: int, distance: Callable[[torch.Tensor, torch.Tensor],
                                                                              torch.Tensor]) -> None:
        self.threshold, self.min_distance, self.distance = threshold, min_distance, distance
        self.modes: torch.Tensor | None = None
        self.total = None

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        for row in x[reward.cpu() >= self.threshold].cpu():  # only the (rare) candidates loop
            if self.modes is None:
                self.modes = row[None]
            elif self.distance(row[None], self.modes).min() >= self.min_distance:
                self.modes = torch.cat([self.modes, row[None]])

    def count(self) -> int:
        return 0 if self.modes is None else len(self.modes)

    def state_dict(self) -> dict[str, Any]:
        return {"modes": self.modes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modes = state["modes"]


class TanimotoModes(FoundInSearch):
    """Molecules above a reward threshold whose Tanimoto similarity (Morgan fingerprints) to every
    mode counted before is below ``max_similarity``, in order of discovery."""

    def __init__(self, smiles: Callable[[torch.Tensor], list[str]], threshold: float,
                 max_similarity: float = 0.7) -> None:
        from pipeline_lib.domains.molecule.chem import tanimoto  # RDKit only where molecules are

        self.smiles, self.threshold, self.max_similarity, self._tanimoto = smiles, threshold, max_similarity, tanimoto
        self._fingerprints: dict = {}  # of the modes counted so far, computed once each
        self.modes: list[str] = []
        self.total = None

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        keep = (reward.cpu() >= self.threshold).nonzero().flatten()
        if not len(keep):
            return
        for s in self.smiles(x[keep.to(x.device)]):  # only the (rare) candidates loop
            if s and s not in self.modes and (not self.modes or
                                              self._tanimoto([s], self.modes, self._fingerprints).max()
                                              < self.max_similarity):
                self.modes.append(s)

    def count(self) -> int:
        return len(self.modes)

    def state_dict(self) -> dict[str, Any]:
        return {"modes": list(self.modes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modes = list(state["modes"])


def unsupported(env, spec: dict[str, Any], reward_name: str, reward_params: dict[str, Any] | None = None) -> str | None:
    """Why a mode definition cannot be used on ``env`` with this reward, or None."""
    kind = spec.get("kind")
    if kind not in MODE_KINDS:
        return f"kind: expected one of {MODE_KINDS}, got {kind!r}"
    stray = sorted(set(spec) - {"kind", *KEYS[kind]})
    if stray:
        return f"kind: {kind!r} takes {list(KEYS[kind]) or 'no other keys'}, not {stray}"
    if kind in ("threshold", "tanimoto") and not isinstance(spec.get("threshold"), (int, float)):
        return f"threshold: expected a number (the reward a mode must reach), got {spec.get('threshold')!r}"
    if kind == "reference":
        try:
            env.domain_rewards().reference_modes(reward_name, dict(reward_params or {}), env)
        except ValueError as err:
            return f"needs a reward with its own mode set: {err}"
    return missing(env, NEEDS[kind])


def local_optima(env, reward: torch.Tensor, top_fraction: float, chunk: int = 4096) -> torch.Tensor:
    """Bool mask over ``env.index`` of terminal objects that no neighbour improves and whose reward is in the
    top ``top_fraction`` of the exact landscape (``reward`` over ``env.terminal_states()``)."""
    x = env.terminal_states()
    r = reward.float().cpu()
    full = torch.full((env.n_states,), -math.inf)
    full[env.index(x).cpu()] = r
    best = torch.full_like(r, -math.inf)
    for lo in range(0, len(x), chunk):  # chunks of objects, each a batch of all their neighbours
        near, valid = env.neighbours(x[lo:lo + chunk])
        values = full[env.index(near.flatten(0, 1)).cpu()].view(valid.shape).masked_fill(~valid.cpu(), -math.inf)
        best[lo:lo + chunk] = values.max(1).values
    cut = torch.quantile(r, 1 - top_fraction)
    mask = torch.zeros(env.n_states, dtype=torch.bool)
    mask[env.index(x).cpu()] = (r >= best) & (r >= cut)
    return mask


def make_modes(env, spec: dict[str, Any], reward_name: str, reward_params: dict[str, Any],
               exact_reward: Callable[[], torch.Tensor]):
    """The mode counter a task's config describes; ``exact_reward()`` gives R over
    ``env.terminal_states()`` (uncounted), for the kinds defined on the whole landscape."""
    reason = unsupported(env, spec, reward_name, reward_params)
    if reason:
        raise ValueError(f"modes.{reason}" if reason.startswith(("kind", "threshold")) else
                         f"modes.kind {spec.get('kind')!r} {reason}")
    kind = spec["kind"]
    if kind == "relative":
        log_r = exact_reward().log().cpu()
        mask = torch.zeros(env.n_states, dtype=torch.bool)
        mask[env.index(env.terminal_states()).cpu()] = log_r >= log_r.max() + math.log(float(spec.get("fraction", 0.5)))
        return ExactModes(mask, env.index)
    if kind == "local_optima":
        return ExactModes(local_optima(env, exact_reward(), float(spec.get("top_fraction", 0.01))), env.index)
    if kind == "threshold":
        return ThresholdModes(float(spec["threshold"]), int(spec.get("min_distance", 2)), env.distance)
    if kind == "tanimoto":
        return TanimotoModes(env.smiles, float(spec["threshold"]), float(spec.get("max_similarity", 0.7)))
    references, project, n_bits = env.domain_rewards().reference_modes(reward_name, reward_params, env)
    return ReferenceModes(references, float(spec.get("delta", 0.1)) * n_bits, project)
