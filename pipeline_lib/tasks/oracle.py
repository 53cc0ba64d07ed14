"""The reward oracle: the only way any method queries a reward, on every domain.

It counts every call and every distinct object (``env.object_keys``), remembers each distinct object's
reward, and feeds it once to the task's mode counter (tasks/modes.py), so "modes found", "top-100
reward" and "diversity" against total or distinct reward calls mean the same for a GFlowNet, MCMC and
DQN, on a grid, a sequence or a molecule: an object counts once its reward has been asked for.
Where the environment has a data set, "novel modes" are the modes counted whose object is outside its training
split, so discovery is told apart from rediscovering what a data-informed method was shown.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from pipeline_lib.tasks.metrics import top_mean


class Oracle:
    """The reward as methods see it: counts every call and remembers each distinct object queried,
    its reward, and the modes among them. ``row()`` is the discovery part of a curve row.

    ``known``: the keys of a data set's training objects; the row's ``novel_modes_found`` then counts the modes
    whose object is not one of them (a subset of ``modes_found``)."""

    def __init__(self, reward: Callable[[torch.Tensor], torch.Tensor], modes, keys: Callable[[torch.Tensor], list],
                 diversity: Callable[[torch.Tensor], float], top_k: int = 100, known: set | None = None) -> None:
        self.reward, self.modes, self.top_k = reward, modes, top_k
        self.known, self.novel = known, 0
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
            if self.known is None:
                self.modes.update(x[rows], values)
            else:
                self._update_counting_novel(x[rows], values, list(new))
        return torch.tensor([self._values[self._index[k]] for k in keys], dtype=torch.float32, device=x.device)

    def _update_counting_novel(self, x: torch.Tensor, values: torch.Tensor, keys: list) -> None:
        """The mode counter's update in the same order (so the same modes), in runs of objects outside the data
        between the data objects, which go one at a time: the modes gained in the runs are the novel ones."""
        start = 0
        for i in [i for i, key in enumerate(keys) if key in self.known] + [len(keys)]:
            if i > start:
                before = self.modes.count()
                self.modes.update(x[start:i], values[start:i])
                self.novel += self.modes.count() - before
            if i < len(keys):
                self.modes.update(x[i:i + 1], values[i:i + 1])
            start = i + 1

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
               "modes_found": self.modes.count(), f"top{self.top_k}_reward": top_mean(r, self.top_k),
               f"top{self.top_k}_diversity": self.diversity(x), "max_reward": float(r.max()) if len(r) else 0.0}
        if self.known is not None:
            row["novel_modes_found"] = self.novel
        return row

    def state_dict(self) -> dict[str, Any]:
        objects = torch.cat(self._objects) if self._objects else torch.empty(0, 0, dtype=torch.long)
        state = {"calls": self.calls, "objects": objects, "values": list(self._values),
                 "modes": self.modes.state_dict()}
        if self.known is not None:
            state["novel_modes"] = self.novel
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls, self._values = state["calls"], list(state["values"])
        objects = state["objects"]
        self._objects = [objects] if len(objects) else []
        self._index = {key: i for i, key in enumerate(self.keys(objects))} if len(objects) else {}
        self.modes.load_state_dict(state["modes"])
        if self.known is not None:
            self.novel = state["novel_modes"]
