"""A GFlowNet trained from scratch on R^exponent: the paper's main baseline (and, with ``matched_to``, the
compute-matched one: extra steps worth a pre-training run's trajectories). The same network, batch,
exploration and budget train with detailed balance (the default), trajectory balance (a learned log Z)
or sub-trajectory balance, so "scratch" can mean the strongest of them. ``warm_start: data`` first fits
P_F to real objects by maximum likelihood: the fair baseline of a data-informed pre-training."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.core.nets import GFlowNet
from pipeline_lib.core.training import adam, added
from pipeline_lib.core.transitions import db_loss, db_rollout, gfn_policy, subtb_loss, tb_loss
from pipeline_lib.methods.base import Method, NetworkSettings

LOSSES = ("db", "tb", "subtb")
WARM_STARTS = ("none", "data")


@dataclass
class ScratchSettings(NetworkSettings):
    """A GFlowNet's settings (uniform backward policy)."""

    loss: str = "db"  # db | tb | subtb
    subtb_lambda: float = 0.9  # weight lambda^(length) of a sub-trajectory (subtb)
    log_z_lr: float = 0.1  # learning rate of log Z (tb)
    # none | data: before the first step, ``warm_steps`` batches of maximum likelihood of P_F on paths to the
    # data set's training objects (no reward call; envs.NAME.data), the data-prior baseline
    warm_start: str = added("none")
    warm_steps: int = added(500)


class Scratch(Method):
    kind = "scratch"
    Settings = ScratchSettings
    stateful = ("model", "log_z", "opt", *Method.stateful)

    @classmethod
    def unsupported(cls, env, settings: ScratchSettings) -> str | None:
        if settings.loss not in LOSSES:
            return f"takes loss in {LOSSES}, got {settings.loss!r}"
        if settings.warm_start not in WARM_STARTS:
            return f"takes warm_start in {WARM_STARTS}, got {settings.warm_start!r}"
        return super().unsupported(env, settings)

    @classmethod
    def uses_data(cls, settings: ScratchSettings) -> bool:
        return settings.warm_start == "data"

    def __init__(self, task, settings: ScratchSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, pretrained, data)
        self.model, self.log_z = self.build(pretrained)
        self._policy = gfn_policy(self.env, self.model)
        self.warm_losses: list[float] = []
        rest = [p for p in self.model.parameters() if p is not self.log_z]
        groups = [{"params": rest}]
        if settings.loss == "tb" or any(p is self.log_z for p in self.model.parameters()):
            groups.append({"params": [self.log_z], "lr": settings.log_z_lr})
        self.opt = adam(groups, lr=settings.lr)  # fresh moments: the reward's gradients differ

    def warm_up(self) -> None:
        """``warm_start: data``: maximum likelihood of P_F on paths to the data set's objects
        (``sources.paths_to``: on a tree each object's one path), ``warm_steps`` batches; costs no reward
        call. Runs once before the first step (a resumed run finds its result in the checkpoint), its time in
        the curve's seconds; ``warm_losses`` holds the mean negative log-likelihood per trajectory, per batch."""
        if self.cfg.warm_start != "data":
            return
        from pipeline_lib.ocgfn.sources import paths_to

        data = self.data
        opt = adam(self.model.parameters(), lr=self.cfg.lr)
        losses = []
        for _ in range(self.cfg.warm_steps):
            idx = torch.randint(len(data), (self.cfg.batch_size,), generator=self.gen, device=data.device)
            traj = paths_to(self.env, data[idx], self.gen)
            _, _, states, actions = traj.transitions()
            log_pf = self._policy(states, None, self.env.forward_mask(states))
            loss = -log_pf.gather(1, actions[:, None]).sum() / traj.n
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        self.warm_losses = losses

    def build(self, pretrained) -> tuple[torch.nn.Module, torch.nn.Parameter]:
        """The flow model (log F, P_F and P_B logits of a state) and log Z (trajectory balance's)."""
        env, cfg = self.env, self.cfg
        model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg.hidden, cfg.layers,
                         learn_pb=False).to(self.device)
        return model, torch.nn.Parameter(torch.zeros((), device=self.device))

    def policy(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._policy(states, rows, mask)

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
