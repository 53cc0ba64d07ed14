"""A GFlowNet trained from scratch on R^exponent: the paper's main baseline (and, with ``matched_to``, the
compute-matched one: extra steps worth a pre-training run's trajectories). The same network, batch,
exploration and budget train with detailed balance (the default), trajectory balance (a learned log Z)
or sub-trajectory balance, so "scratch" can mean the strongest of them."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.core.nets import GFlowNet
from pipeline_lib.core.transitions import db_loss, db_rollout, gfn_policy, subtb_loss, tb_loss
from pipeline_lib.methods.base import Method, NetworkSettings

LOSSES = ("db", "tb", "subtb")


@dataclass
class ScratchSettings(NetworkSettings):
    """A GFlowNet's settings (uniform backward policy)."""

    loss: str = "db"  # db | tb | subtb
    subtb_lambda: float = 0.9  # weight lambda^(length) of a sub-trajectory (subtb)
    log_z_lr: float = 0.1  # learning rate of log Z (tb)


class Scratch(Method):
    kind = "scratch"
    Settings = ScratchSettings
    stateful = ("model", "log_z", "opt", *Method.stateful)

    @classmethod
    def unsupported(cls, env, settings: ScratchSettings) -> str | None:
        if settings.loss not in LOSSES:
            return f"takes loss in {LOSSES}, got {settings.loss!r}"
        return super().unsupported(env, settings)

    def __init__(self, task, settings: ScratchSettings, seed: int, device: torch.device, pretrained=None) -> None:
        super().__init__(task, settings, seed, device, pretrained)
        self.model, self.log_z = self.build(pretrained)
        rest = [p for p in self.model.parameters() if p is not self.log_z]
        groups = [{"params": rest}]
        if settings.loss == "tb" or any(p is self.log_z for p in self.model.parameters()):
            groups.append({"params": [self.log_z], "lr": settings.log_z_lr})
        self.opt = torch.optim.Adam(groups, lr=settings.lr)
        self._policy = gfn_policy(self.env, self.model)

    def build(self, pretrained) -> tuple[torch.nn.Module, torch.nn.Parameter]:
        """The flow model (log F, P_F and P_B logits of a state) and log Z (trajectory balance's)."""
        env, cfg = self.env, self.cfg
        model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg.hidden, cfg.layers,
                         learn_pb=False).to(self.device)
        return model, torch.nn.Parameter(torch.zeros((), device=self.device))

    def policy(self, states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return self._policy(states, rows)

    def train_step(self) -> dict[str, float]:
        traj, terms = db_rollout(self.env, self.model, self.cfg.batch_size, self.cfg.epsilon, self.gen)
        log_r = self.task.log_reward(traj.terminals)
        if self.cfg.loss == "tb":
            loss = tb_loss(terms, self.log_z, log_r)
        elif self.cfg.loss == "subtb":
            loss = subtb_loss(terms, log_r, self.cfg.subtb_lambda)
        else:
            loss = db_loss(terms, log_r)
        losses = self.optimise(loss)
        self.count(traj)
        return losses
