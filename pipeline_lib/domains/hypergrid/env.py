"""The hypergrid (Bengio et al. 2021): ``ndim`` coordinates in [0, side), increment one or stop."""
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

MAX_ENUMERABLE = 1 << 22  # cells; as on sequences, the largest space whose every object a job lists


class HyperGrid(DomainRewards):
    """Batched hypergrid. States are long tensors [B, ndim]; action i < ndim increments coordinate i.

    Every cell is a terminal object (reached by stop). Outcome y is reachable from s iff s <= y
    coordinatewise, which is what reachability-aware teleportation and the conversion use. The grid
    is enumerable (up to MAX_ENUMERABLE cells), a DAG (not a tree: a cell has many paths), and has local moves (one
    step along one axis) for MCMC and neighbours for local-optimum modes.
    """

    rewards_module = "pipeline_lib.domains.hypergrid.rewards"

    def __init__(self, ndim: int, side: int, device: torch.device | str = "cpu") -> None:
        if ndim < 1 or side < 2:
            raise ValueError(f"hypergrid needs ndim >= 1 and side >= 2, got ndim={ndim}, side={side}")
        self.ndim, self.side = ndim, side
        self.device = torch.device(device)
        self.n_actions = ndim + 1
        self.stop = ndim
        self.n_backward_actions = ndim
        self.max_length = ndim * (side - 1) + 1
        self.feature_dim = ndim * side
        self.pair_dim = ndim * side
        self.n_states = side**ndim
        self._radix = side ** torch.arange(ndim - 1, -1, -1, device=self.device)
        self._dims = torch.arange(ndim, device=self.device)
        self._values = torch.arange(side, device=self.device)
        # the rollout loop's two per-step operations as one lookup and one comparison each: action a moves by
        # row a of ``_moves`` (stop: zeros), and the mask compares coordinates (stop reads coordinate 0 against a
        # bound it never reaches)
        self._moves = torch.cat([torch.eye(ndim, dtype=torch.long), torch.zeros(1, ndim, dtype=torch.long)]).to(
            self.device)
        self._mask_columns = torch.arange(ndim + 1, device=self.device) % ndim
        self._mask_bounds = torch.tensor([side - 1] * ndim + [side], device=self.device)

    def initial_states(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.ndim, dtype=torch.long, device=self.device)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return states.index_select(-1, self._mask_columns) < self._mask_bounds

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return states > 0

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # a row lookup, not one_hot, which checks its input range with a synchronising min/max on every call
        return states + self._moves.index_select(0, actions)

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def parent(self, states: torch.Tensor, back_actions: torch.Tensor) -> torch.Tensor:
        """Parents of ``states`` along backward actions (decrement one coordinate)."""
        return states - torch.nn.functional.one_hot(back_actions, self.ndim)

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        return (states[..., None] == self._values).flatten(-2).float()

    def pair_features(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Per coordinate, y - s one-hot over 0..side-1, all zero where s has passed y."""
        return ((outcomes - states)[..., None] == self._values).flatten(-2).float()

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        return (states == 0).all(dim=1)

    def can_reach(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        return (states <= outcomes).all(dim=-1)

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a == b).all(dim=-1)

    def random_outcomes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, self.side, (n, self.ndim), generator=generator, device=self.device)

    def terminal_states(self) -> torch.Tensor:
        return self.all_states()

    def all_states(self) -> torch.Tensor:
        grid = torch.cartesian_prod(*[torch.arange(self.side, device=self.device)] * self.ndim)
        return grid.reshape(-1, self.ndim)

    def index(self, states: torch.Tensor) -> torch.Tensor:
        return (states * self._radix).sum(-1)

    def level(self, states: torch.Tensor) -> torch.Tensor:
        return states.sum(-1)

    headline = "l1"  # the summary leads with the exact L1 curves: every method sees every cell within steps
    per_task_report = False  # report tables list each task apart (objectives on different scales)

    @property
    def listed(self) -> bool:
        """Whether the grid is small enough to list (MAX_ENUMERABLE): its exact target, L1 and the explorer's
        coverage table are built only then."""
        return self.n_states <= MAX_ENUMERABLE

    @property
    def figure_kinds(self) -> tuple[str, ...]:
        """The heatmaps draw the target R/Z beside the samples: only where the grid can be listed."""
        return ("heatmap",) if self.listed else ()

    def capabilities(self) -> dict[str, str | None]:
        have = {LOCAL_MOVES: None, NEIGHBOURS: None}
        if self.listed:
            have[ENUMERABLE] = None
        why = {ENUMERABLE: f"{self.side}^{self.ndim} cells are more than the {MAX_ENUMERABLE} states a space may have "
                           "to be listed",
               "tree": "a grid cell is reached by many trajectories (a DAG, not a tree)",
               "ancestors": "not listed: the dense conversion serves where the grid can be listed",
               "molecules": "grid cells are not molecules",
               "completions": "no canonical completion order: a categorical Q over the cells serves where they can "
                              "be listed"}
        return {name: have.get(name, why.get(name)) for name in CAPABILITIES}

    def objects(self, states: torch.Tensor) -> torch.Tensor:
        """What a reward plug-in receives: the cells themselves, a long tensor [B, ndim] on the CPU whatever the
        training device (a plug-in may call ``.numpy()``, as on other domains' plain Python objects)."""
        return states.cpu()

    def object_keys(self, states: torch.Tensor) -> list[bytes]:
        return row_keys(states)

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise L1 (Manhattan) distances [A, B] between cells."""
        return (a[:, None, :] - b[None, :, :]).abs().sum(-1)

    def diversity(self, states: torch.Tensor) -> float:
        """Mean pairwise L1 distance between cells."""
        return mean_pairwise(self.distance(states, states))

    def describe(self, states: torch.Tensor) -> dict[str, Any]:
        cells = states.cpu()
        return {"outcome": self.index(states).cpu().numpy(), **{f"x{i}": cells[:, i].numpy() for i in range(self.ndim)}}

    def parse(self, table) -> torch.Tensor:
        cols = [table[f"x{i}"].to_numpy(dtype="int64") for i in range(self.ndim)]
        return torch.stack([torch.tensor(c) for c in cols], dim=1).to(self.device)

    def sample_metrics(self, states: torch.Tensor, top: torch.Tensor) -> dict[str, float]:
        return {}

    def neighbours(self, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cells one step away along one axis [B, 2 ndim, ndim] and which lie on the grid (a step off the
        grid is reported as the cell itself, so every row indexes a real cell)."""
        steps = torch.cat([torch.eye(self.ndim, dtype=torch.long), -torch.eye(self.ndim, dtype=torch.long)])
        near = states[:, None, :] + steps.to(states.device)
        valid = ((near >= 0) & (near < self.side)).all(-1)
        return torch.where(valid[..., None], near, states[:, None, :]), valid

    def propose(self, x: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of +-1 along a uniformly chosen axis (symmetric: log q correction 0); a step off the
        grid keeps x and is not a move (no reward call)."""
        n = len(x)
        axis = torch.randint(0, self.ndim, (n,), generator=generator, device=x.device)
        sign = torch.randint(0, 2, (n,), generator=generator, device=x.device) * 2 - 1
        new = x + (axis[:, None] == self._dims) * sign[:, None]
        moved = ((new >= 0) & (new < self.side)).all(-1)
        return torch.where(moved[:, None], new, x), torch.zeros(n, device=x.device), moved
