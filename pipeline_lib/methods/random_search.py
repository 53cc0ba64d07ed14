"""Random search: query ``batch_size`` objects drawn by the environment's ``random_outcomes`` per step.
The floor every method must beat at equal distinct reward calls; it needs nothing but the protocol."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.methods.base import Method, TrainedSettings


@dataclass
class RandomSearchSettings(TrainedSettings):
    """``batch_size`` objects queried per step."""


class RandomSearch(Method):
    kind = "random"
    Settings = RandomSearchSettings

    def train_step(self) -> dict[str, float]:
        x = self.env.random_outcomes(self.cfg.batch_size, self.gen)
        self.task.log_reward(x)  # the query is the search
        self.trajectories += len(x)
        return {}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.env.random_outcomes(n, generator)
