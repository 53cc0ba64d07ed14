"""Metropolis-Hastings on R^exponent with the environment's local moves (its ``propose``: single-site
substitutions, insertions and deletions on sequences, unit steps on grids, each with its Hastings
correction). ``batch_size`` chains move once each per step; every proposal is one reward call."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pipeline_lib.core.env import LOCAL_MOVES
from pipeline_lib.core.training import added
from pipeline_lib.methods.base import Method, TrainedSettings

STARTS = ("random", "data")


@dataclass
class MCMCSettings(TrainedSettings):
    """``batch_size`` is the number of chains."""

    start: str = added("random")  # random | data: chains start at env.random_outcomes, or at the data set's objects


class MCMC(Method):
    kind = "mcmc"
    Settings = MCMCSettings
    needs = (LOCAL_MOVES,)
    stateful = ("x", "log_r", "accepted", *Method.stateful)

    @classmethod
    def unsupported(cls, env, settings: MCMCSettings) -> str | None:
        if settings.start not in STARTS:
            return f"takes start in {STARTS}, got {settings.start!r}"
        return super().unsupported(env, settings)

    @classmethod
    def uses_data(cls, settings: MCMCSettings) -> bool:
        return settings.start == "data"

    def __init__(self, task, settings: MCMCSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, data=data)
        if settings.start == "data":  # distinct training objects while there are enough, in a seeded order
            order = torch.randperm(len(self.data), generator=self.gen, device=self.data.device)
            self.x = self.data[order.repeat(-(-settings.batch_size // len(order)))[:settings.batch_size]]
        else:
            self.x = self.env.random_outcomes(settings.batch_size, self.gen)
        self.log_r = task.log_reward(self.x)
        self.accepted = 0

    def mh_step(self, log_reward: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator) -> None:
        """Propose, query the moved chains, accept with min(1, R(x')/R(x) q(x|x')/q(x'|x))."""
        proposal, log_q, moved = self.env.propose(self.x, generator)
        log_r_new = self.log_r.clone()
        if moved.any():
            log_r_new[moved] = log_reward(proposal[moved])
        u = torch.rand(len(proposal), generator=generator, device=proposal.device).clamp(min=1e-30).log()
        accept = moved & (u < log_r_new - self.log_r + log_q)
        self.x = torch.where(accept[:, None], proposal, self.x)
        self.log_r = torch.where(accept, log_r_new, self.log_r)
        self.accepted += int(accept.sum())

    def train_step(self) -> dict[str, float]:
        self.mh_step(self.task.log_reward, self.gen)
        self.trajectories += len(self.x)
        self.transitions += len(self.x)
        return {"acceptance": self.accepted / max(1, self.trajectories)}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The chain states over the next ceil(n / chains) steps (rewards uncounted)."""
        out = []
        while sum(len(o) for o in out) < n:
            self.mh_step(self.task.uncounted_log_reward, generator)
            out.append(self.x.clone())
        return torch.cat(out)[:n]
