"""Subsets of ``n`` items built by adding one item at a time: a DAG in which a set of k items is reached by
k! trajectories (the set-generation task of Pan et al. 2023 and of Shen et al. 2023).

States are long tensors [B, n] of 0/1 membership; s0 is the empty set. Forward action i < n adds item i,
the last action stops, which is valid once the set has ``min_size`` items; a set has at most ``max_size``.
Outcome y is reachable from s iff s is a subset of y.
"""
from __future__ import annotations

from typing import Any

import torch

from pipeline_lib.core.env import (
    CAPABILITIES,
    ENUMERABLE,
    LOCAL_MOVES,
    NEIGHBOURS,
    DomainRewards,
    mean_pairwise,
    row_keys,
)

MAX_ITEMS_ENUMERABLE = 20  # 2^20 states


class Subset(DomainRewards):
    """Batched set environment. Backward action i removes item i (uniform P_B over the set's items)."""

    rewards_module = "pipeline_lib.domains.subset.rewards"

    figure_kinds: tuple[str, ...] = ()
    per_task_report = False

    def __init__(self, n: int, max_size: int | None = None, min_size: int = 1,
                 device: torch.device | str = "cpu") -> None:
        max_size = n if max_size is None else max_size
        if n < 1 or not 0 <= min_size <= max_size <= n:
            raise ValueError(f"subset needs n >= 1 and 0 <= min_size <= max_size <= n, got n={n}, "
                             f"min_size={min_size}, max_size={max_size}")
        self.n, self.min_size, self.max_size = n, min_size, max_size
        self.device = torch.device(device)
        self.n_actions = n + 1
        self.stop = n
        self.n_backward_actions = n
        self.max_length = max_size + 1
        self.feature_dim = n
        self.pair_dim = 2 * n
        self.n_states = 2**n
        self._items = torch.arange(n, device=self.device)
        self._radix = 2 ** torch.arange(n - 1, -1, -1, device=self.device)

    def capabilities(self) -> dict[str, str | None]:
        why = {ENUMERABLE: None if self.n <= MAX_ITEMS_ENUMERABLE else
               f"2^{self.n} sets is more than 2^{MAX_ITEMS_ENUMERABLE} states to list",
               "tree": "a set of k items is reached by k! trajectories (a DAG, not a tree)",
               LOCAL_MOVES: None, NEIGHBOURS: None, "molecules": "sets are not molecules",
               "ancestors": "not listed: a set of k items has 2^k subsets",
               "completions": "no canonical completion order: a categorical Q over the sets serves"}
        return {name: why[name] for name in CAPABILITIES}

    # --- the MDP ---
    def sizes(self, states: torch.Tensor) -> torch.Tensor:
        return states.sum(-1)

    def initial_states(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.n, dtype=torch.long, device=self.device)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        size = self.sizes(states)[:, None]
        add = (states == 0) & (size < self.max_size)
        return torch.cat([add, size >= self.min_size], dim=1)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return states == 1

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return states + (actions[:, None] == self._items)  # stop (= n) matches no item

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        return states.float()

    def pair_features(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """The items of y still to add, and the items of s that y lacks (any one makes y unreachable)."""
        return torch.cat([outcomes > states, states > outcomes], -1).float()

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return self.sizes(states) == 0

    def level(self, states: torch.Tensor) -> torch.Tensor:
        return self.sizes(states)

    def can_reach(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        return (states <= outcomes).all(-1)

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a == b).all(-1)

    def random_outcomes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A size uniform in [min_size, max_size], then that many distinct items uniformly."""
        size = torch.randint(self.min_size, self.max_size + 1, (n, 1), generator=generator, device=self.device)
        rank = torch.rand(n, self.n, generator=generator, device=self.device).argsort(-1).argsort(-1)
        return (rank < size).long()

    # --- enumeration ---
    def all_states(self) -> torch.Tensor:
        """Every subset of the n items, 2^n rows (those beyond ``max_size`` are listed for a plain index order, and
        never visited)."""
        return torch.cartesian_prod(*[torch.arange(2, device=self.device)] * self.n).reshape(-1, self.n)

    def terminal_states(self) -> torch.Tensor:
        states = self.all_states()
        size = self.sizes(states)
        return states[(size >= self.min_size) & (size <= self.max_size)]

    def index(self, states: torch.Tensor) -> torch.Tensor:
        return (states * self._radix).sum(-1)

    # --- local moves ---
    def neighbours(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The sets one item flip away [B, n, n] and which keep the size within [min_size, max_size]."""
        near = states[:, None, :] ^ torch.eye(self.n, dtype=torch.long, device=states.device)[None]
        size = self.sizes(near)
        valid = (size >= self.min_size) & (size <= self.max_size)
        return torch.where(valid[..., None], near, states[:, None, :]), valid

    def propose(self, x: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flip one uniformly chosen item (symmetric: log q correction 0); a flip that leaves the size range
        keeps x and is not a move."""
        item = torch.randint(0, self.n, (len(x),), generator=generator, device=x.device)
        new = x ^ (item[:, None] == self._items).long()
        size = self.sizes(new)
        moved = (size >= self.min_size) & (size <= self.max_size)
        return torch.where(moved[:, None], new, x), torch.zeros(len(x), device=x.device), moved

    # --- describing objects ---
    def objects(self, states: torch.Tensor) -> list[list[int]]:
        """What a reward plug-in receives: each set as the sorted list of its items."""
        return [[i for i, v in enumerate(row) if v] for row in states.tolist()]

    def object_keys(self, states: torch.Tensor) -> list[bytes]:
        return row_keys(states)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Size of the symmetric difference [A, B]."""
        return (a[:, None, :] != b[None, :, :]).sum(-1)

    def diversity(self, states: torch.Tensor) -> float:
        return mean_pairwise(self.distance(states, states))

    def describe(self, states: torch.Tensor) -> dict[str, Any]:
        return {"items": [" ".join(map(str, items)) for items in self.objects(states)]}

    def parse(self, table) -> torch.Tensor:
        out = torch.zeros(len(table), self.n, dtype=torch.long)
        for row, text in enumerate(table["items"]):
            for item in str(text).split():
                out[row, int(item)] = 1
        return out.to(self.device)

    def sample_metrics(self, states: torch.Tensor, top: torch.Tensor) -> dict[str, float]:
        return {}

    # --- rewards ---
