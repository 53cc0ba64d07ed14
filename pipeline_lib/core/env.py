"""The batched environment protocol every domain implements.

States are tensors with a leading batch dimension; every method acts on a whole batch at once, so
training never loops over individual states in Python. The last forward action is always ``stop``:
taking it from state ``s`` ends the trajectory with terminal object ``x = s``.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Environment(Protocol):
    """A discrete DAG whose terminal objects are reached by a ``stop`` action."""

    n_actions: int  # forward actions, the last one is stop
    n_backward_actions: int
    max_length: int  # most transitions in a trajectory, stop included
    feature_dim: int

    def initial_states(self, n: int) -> torch.Tensor:
        """``n`` copies of s0."""

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Bool [B, n_actions]: which forward actions are valid."""

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Bool [B, n_backward_actions]: which parents exist (all False at s0)."""

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Children of ``states`` under non-stop ``actions``; stop rows are returned unchanged."""

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The backward action that undoes forward ``actions`` taken from ``states``."""

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        """Float [B, feature_dim] network input; also used to encode outcomes."""

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        """Bool [B]."""

    def can_reach(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Bool [B]: terminal ``outcomes`` can still be produced from ``states``."""

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Bool [B]: row-wise equality of two batches of states."""

    def random_outcomes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` terminal objects drawn at random (evaluation targets of spaces too large to list)."""


@runtime_checkable
class EnumerableEnvironment(Environment, Protocol):
    """An environment small enough to list every state (exact DP and exact conversion)."""

    n_states: int
    enumerable: bool  # False where the space is too large; the methods below then raise

    def terminal_states(self) -> torch.Tensor:
        """Every terminal object, in ``index`` order."""

    def all_states(self) -> torch.Tensor:
        """Every state, in ``index`` order."""

    def index(self, states: torch.Tensor) -> torch.Tensor:
        """Long [B]: position of each state in ``all_states()``."""

    def level(self, states: torch.Tensor) -> torch.Tensor:
        """Long [B]: number of transitions from s0, so parents have a smaller level."""
