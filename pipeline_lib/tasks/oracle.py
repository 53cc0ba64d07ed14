"""What a method has discovered through the reward oracle: calls, unique objects, modes, top-K.

Every adaptation method on a sequence domain queries the reward only through an ``Oracle``, so
"modes found vs reward calls" means the same thing for a GFlowNet, MCMC and DQN: an object counts
once its reward has been asked for. Mode definitions (config ``tasks.*.modes``, config/README.md):
- ``reference``: a fixed set of reference objects (the bit-sequence mode set M); reference m is
  found when a queried x lies within Hamming distance ``delta`` (a fraction of the length) of m;
- ``exact``: a precomputed set of outcomes (TF-Bind-8: local optima under single-site mutation
  within the top ``top_fraction`` of the exact landscape); found when queried;
- ``threshold``: reward >= ``threshold`` and Hamming distance >= ``min_distance`` from every mode
  already counted, in order of discovery (RNA, AMP);
- ``tanimoto``: molecules with reward >= ``threshold`` whose Tanimoto similarity to every mode
  already counted is below ``max_similarity`` (0.7), in order of discovery.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch


def hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise position-wise distances [A, B] of padded token rows (a pad against a token counts)."""
    return (a[:, None, :] != b[None, :, :]).sum(-1)


def diversity(x: torch.Tensor) -> float:
    """Mean pairwise Hamming distance of a set of objects (0 for fewer than two)."""
    if len(x) < 2:
        return 0.0
    d = hamming(x, x).float()
    return float(d.sum() / (len(x) * (len(x) - 1)))


class ReferenceModes:
    """Reference objects found within ``radius`` (Hamming distance in ``project``-ed space)."""

    def __init__(self, references: torch.Tensor, radius: float,
                 project: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> None:
        self.project, self.radius = project, radius
        self.references = project(references)
        self.found = torch.zeros(len(references), dtype=torch.bool)

    @property
    def total(self) -> int:
        return len(self.references)

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        near = hamming(self.project(x).cpu(), self.references.cpu()) <= self.radius
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

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        idx = self.index(x).cpu()
        self.found[idx] |= self.mask[idx]

    def count(self) -> int:
        return int(self.found.sum())

    def state_dict(self) -> dict[str, Any]:
        return {"found": self.found}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.found = state["found"]


class ThresholdModes:
    """Objects above a reward threshold, at least ``min_distance`` from every mode counted before."""

    def __init__(self, threshold: float, min_distance: int) -> None:
        self.threshold, self.min_distance = threshold, min_distance
        self.modes: torch.Tensor | None = None
        self.total = None

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        for row in x[reward.cpu() >= self.threshold].cpu():  # only the (rare) candidates loop
            if self.modes is None:
                self.modes = row[None]
            elif hamming(row[None], self.modes).min() >= self.min_distance:
                self.modes = torch.cat([self.modes, row[None]])

    def count(self) -> int:
        return 0 if self.modes is None else len(self.modes)

    def state_dict(self) -> dict[str, Any]:
        return {"modes": self.modes}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modes = state["modes"]


class TanimotoModes:
    """Molecules above a reward threshold whose Tanimoto similarity (Morgan fingerprints) to every
    mode counted before is below ``max_similarity``, in order of discovery."""

    def __init__(self, smiles: Callable[[torch.Tensor], list[str]], threshold: float,
                 max_similarity: float = 0.7) -> None:
        from pipeline_lib.domains.molecule.chem import tanimoto  # RDKit only where molecules are

        self.smiles, self.threshold, self.max_similarity, self._tanimoto = smiles, threshold, max_similarity, tanimoto
        self.modes: list[str] = []
        self.total = None

    def update(self, x: torch.Tensor, reward: torch.Tensor) -> None:
        keep = (reward.cpu() >= self.threshold).nonzero().flatten()
        if not len(keep):
            return
        for s in self.smiles(x[keep.to(x.device)]):  # only the (rare) candidates loop
            if s and s not in self.modes and (not self.modes or
                                              self._tanimoto([s], self.modes).max() < self.max_similarity):
                self.modes.append(s)

    def count(self) -> int:
        return len(self.modes)

    def state_dict(self) -> dict[str, Any]:
        return {"modes": list(self.modes)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.modes = list(state["modes"])


def row_keys(x: torch.Tensor) -> list[bytes]:
    """One hashable key per token row."""
    arr = np.ascontiguousarray(x.cpu().numpy().astype(np.int16))
    return [row.tobytes() for row in arr]


class Oracle:
    """The reward as methods see it: counts every call and remembers each distinct object queried,
    its reward, and the modes among them. ``row()`` is the discovery part of a curve row."""

    def __init__(self, reward: Callable[[torch.Tensor], torch.Tensor], modes, top_k: int = 100,
                 keys: Callable[[torch.Tensor], list] = row_keys,
                 diversity: Callable[[torch.Tensor], float] = diversity) -> None:
        self.reward, self.modes, self.top_k = reward, modes, top_k
        self.keys, self.diversity = keys, diversity
        self.calls = 0
        self._index: dict[bytes, int] = {}
        self._objects: list[torch.Tensor] = []
        self._values: list[float] = []

    @property
    def unique_calls(self) -> int:
        return len(self._index)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        values = torch.as_tensor(self.reward(x), dtype=torch.float32, device=x.device)
        self.calls += len(x)
        new = []
        for i, key in enumerate(self.keys(x)):
            if key not in self._index:
                self._index[key] = len(self._values)
                self._values.append(float(values[i]))
                new.append(i)
        if new:
            rows = torch.tensor(new, device=x.device)
            self._objects.append(x[rows].cpu())
            self.modes.update(x[rows], values[rows])
        return values

    def best(self, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` highest-reward distinct objects queried so far, and their rewards."""
        k = k or self.top_k
        if not self._values:
            return torch.empty(0, 0, dtype=torch.long), torch.empty(0)
        values = torch.tensor(self._values)
        top = values.topk(min(k, len(values))).indices
        return torch.cat(self._objects)[top], values[top]

    def row(self) -> dict[str, float]:
        x, r = self.best()
        return {"reward_calls": self.calls, "unique_reward_calls": self.unique_calls,
                "modes_found": self.modes.count(), f"top{self.top_k}_reward": float(r.mean()) if len(r) else 0.0,
                f"top{self.top_k}_diversity": self.diversity(x), "max_reward": float(r.max()) if len(r) else 0.0}

    def state_dict(self) -> dict[str, Any]:
        objects = torch.cat(self._objects) if self._objects else torch.empty(0, 0, dtype=torch.long)
        return {"calls": self.calls, "objects": objects, "values": list(self._values),
                "modes": self.modes.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self._values = state["calls"], list(state["values"])
        objects = state["objects"]
        self._objects = [objects] if len(objects) else []
        self._index = {key: i for i, key in enumerate(self.keys(objects))} if len(objects) else {}
        self.modes.load_state_dict(state["modes"])


def sample_summary(env, x: torch.Tensor, reward: torch.Tensor, modes, top_k: int = 100) -> dict[str, float]:
    """Metrics of a set of final samples: modes among them, top-K mean reward and diversity of the
    distinct objects (``env.object_keys``), the unique fraction and the domain's own metrics."""
    keys = env.object_keys(x)
    first = sorted({k: i for i, k in reversed(list(enumerate(keys)))}.values())
    ux, ur = x[first], reward[first]
    modes.update(ux, ur)
    top = ur.topk(min(top_k, len(ur))).indices
    return {"samples": len(x), "unique_fraction": len(first) / max(1, len(x)), "modes_in_samples": modes.count(),
            f"top{top_k}_reward": float(ur[top].mean()), f"top{top_k}_diversity": env.diversity(ux[top]),
            "mean_reward": float(reward.mean()), **env.sample_metrics(x, ux[top])}
