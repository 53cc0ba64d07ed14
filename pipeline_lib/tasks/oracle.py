"""The reward oracle: the only way any method queries a reward, on every domain.

It counts every call and every distinct object (``env.object_keys``), remembers each distinct object's
reward, and feeds it once to the task's mode counter (tasks/modes.py), so "modes found", "top-100
reward" and "diversity" against total or distinct reward calls mean the same for a GFlowNet, MCMC and
DQN, on a grid, a sequence or a molecule: an object counts once its reward has been asked for.
Where the environment has a data set, a second counter sees only the objects outside its training split, so
"novel modes" separates discovery from rediscovering what a data-informed method was shown.
"""
from __future__ import annotations

from typing import Any, Callable

import torch


class Oracle:
    """The reward as methods see it: counts every call and remembers each distinct object queried,
    its reward, and the modes among them. ``row()`` is the discovery part of a curve row.

    ``novel``: a fresh mode counter fed only the objects whose key is not in ``known`` (the keys of a data
    set's training objects); its count is the row's ``novel_modes_found``."""

    def __init__(self, reward: Callable[[torch.Tensor], torch.Tensor], modes, keys: Callable[[torch.Tensor], list],
                 diversity: Callable[[torch.Tensor], float], top_k: int = 100, novel=None,
                 known: set | None = None) -> None:
        if (novel is None) != (known is None):
            raise ValueError("Oracle: novel modes need both a mode counter and the known objects' keys")
        self.reward, self.modes, self.top_k = reward, modes, top_k
        self.novel, self.known = novel, known
        self.keys, self.diversity = keys, diversity
        self.calls = 0
        self._index: dict[bytes, int] = {}
        self._objects: list[torch.Tensor] = []
        self._values: list[float] = []

    @property
    def unique_calls(self) -> int:
        return len(self._index)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """R of every row; the reward itself is called only on objects never queried before (a cached
        oracle: ``calls`` counts what a method asked, ``unique_calls`` what the reward computed)."""
        keys = self.keys(x)
        self.calls += len(x)
        new: dict[Any, int] = {}
        for i, key in enumerate(keys):
            if key not in self._index and key not in new:
                new[key] = i
        if new:
            rows = torch.tensor(list(new.values()), device=x.device)
            values = torch.as_tensor(self.reward(x[rows]), dtype=torch.float32, device=x.device)
            for key, value in zip(new, values.tolist()):
                self._index[key] = len(self._values)
                self._values.append(value)
            self._objects.append(x[rows].cpu())
            self.modes.update(x[rows], values)
            if self.novel is not None:
                fresh = torch.tensor([key not in self.known for key in new], device=x.device)
                if fresh.any():
                    self.novel.update(x[rows][fresh], values[fresh])
        return torch.tensor([self._values[self._index[k]] for k in keys], dtype=torch.float32, device=x.device)

    def rank(self, values: torch.Tensor) -> torch.Tensor:
        """The fraction of the distinct objects queried so far whose R is below each of ``values``."""
        known = torch.tensor(self._values, dtype=torch.float32).sort().values
        if not len(known):
            return torch.zeros_like(values)
        below = torch.searchsorted(known, values.detach().float().cpu().contiguous(), right=False)
        return (below.float() / len(known)).to(values.device)

    def save(self) -> None:
        """Persist what the reward caches (its own ``save``, e.g. RNA energies), at checkpoints and job ends."""
        if hasattr(self.reward, "save"):
            self.reward.save()

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
        row = {"reward_calls": self.calls, "unique_reward_calls": self.unique_calls,
               "modes_found": self.modes.count(), f"top{self.top_k}_reward": float(r.mean()) if len(r) else 0.0,
               f"top{self.top_k}_diversity": self.diversity(x), "max_reward": float(r.max()) if len(r) else 0.0}
        if self.novel is not None:
            row["novel_modes_found"] = self.novel.count()
        return row

    def state_dict(self) -> dict[str, Any]:
        objects = torch.cat(self._objects) if self._objects else torch.empty(0, 0, dtype=torch.long)
        state = {"calls": self.calls, "objects": objects, "values": list(self._values),
                 "modes": self.modes.state_dict()}
        if self.novel is not None:
            state["novel_modes"] = self.novel.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self._values = state["calls"], list(state["values"])
        objects = state["objects"]
        self._objects = [objects] if len(objects) else []
        self._index = {key: i for i, key in enumerate(self.keys(objects))} if len(objects) else {}
        self.modes.load_state_dict(state["modes"])
        if self.novel is not None:
            self.novel.load_state_dict(state["novel_modes"])
