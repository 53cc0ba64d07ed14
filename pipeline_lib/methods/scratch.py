"""A detailed-balance GFlowNet trained from scratch on R^exponent: the paper's main baseline (and, with
``matched_to``, the compute-matched one: extra steps worth a pre-training run's trajectories)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.core.nets import GFlowNet
from pipeline_lib.core.transitions import db_loss, db_rollout, gfn_policy
from pipeline_lib.methods.base import Method, NetworkSettings


@dataclass
class ScratchSettings(NetworkSettings):
    """A DB GFlowNet's settings (uniform backward policy)."""


class Scratch(Method):
    kind = "scratch"
    Settings = ScratchSettings
    stateful = ("model", "opt", *Method.stateful)

    def __init__(self, task, settings: ScratchSettings, seed: int, device: torch.device, pretrained=None) -> None:
        super().__init__(task, settings, seed, device)
        env = self.env
        self.model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, settings.hidden,
                              settings.layers, learn_pb=False).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=settings.lr)
        self._policy = gfn_policy(env, self.model)

    def policy(self, states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self._policy(states, rows)

    def train_step(self) -> dict[str, float]:
        traj, terms = db_rollout(self.env, self.model, self.cfg.batch_size, self.cfg.epsilon, self.gen)
        losses = self.optimise(db_loss(terms, self.task.log_reward(traj.terminals)))
        self.count(traj)
        return losses
