"""The hypergrid (Bengio et al. 2021): ``ndim`` coordinates in [0, side), increment one or stop."""
from __future__ import annotations

import torch


class HyperGrid:
    """Batched hypergrid. States are long tensors [B, ndim]; action i < ndim increments coordinate i.

    Every cell is a terminal object (reached by stop). Outcome y is reachable from s iff s <= y
    coordinatewise, which is what reachability-aware teleportation and the conversion use.
    """

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
        self.n_states = side**ndim
        self.enumerable = True
        self._radix = side ** torch.arange(ndim - 1, -1, -1, device=self.device)
        self._dims = torch.arange(ndim, device=self.device)
        self._values = torch.arange(side, device=self.device)

    def initial_states(self, n: int) -> torch.Tensor:
        return torch.zeros(n, self.ndim, dtype=torch.long, device=self.device)

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        moves = states < self.side - 1
        return torch.cat([moves, torch.ones_like(moves[:, :1])], dim=1)

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        return states > 0

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        # stop (= ndim) matches no coordinate; comparisons instead of one_hot, which checks its
        # input range with a synchronising min/max on every call of the rollout loop
        return states + (actions[:, None] == self._dims)

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return actions

    def parent(self, states: torch.Tensor, back_actions: torch.Tensor) -> torch.Tensor:
        """Parents of ``states`` along backward actions (decrement one coordinate)."""
        return states - torch.nn.functional.one_hot(back_actions, self.ndim)

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        return (states[..., None] == self._values).flatten(-2).float()

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
