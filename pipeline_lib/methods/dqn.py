"""DQN on the generation MDP: the RL baseline that maximises reward rather than sampling in proportion
to it. It uses only the environment protocol, so it runs on every domain."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline_lib.core.nets import NEG_INF, mlp
from pipeline_lib.core.rollout import rollout
from pipeline_lib.core.training import adam
from pipeline_lib.methods.base import Method, NetworkSettings, mixed_table

REWARD_SCALES = ("log", "rank", "raw")


@dataclass
class DQNSettings(NetworkSettings):
    buffer_size: int = 50000  # replay capacity (transitions)
    target_every: int = 100  # target-network refresh (steps)
    # The terminal reward DQN learns from: "log" = exponent * log R (the GFlowNets' log-reward), "rank" =
    # the fraction of the distinct objects queried so far with a lower R (in [0, 1], rescaled as the
    # search goes), "raw" = R^exponent. R^8 on [0, 1] rewards leaves almost every return near 0, too
    # little signal for Q-learning; log R keeps the order and spreads the values.
    reward_scale: str = "log"


class ReplayBuffer:
    """A ring buffer of transitions (s, a, s', r, done) held as tensors; checkpointable."""

    def __init__(self, capacity: int, width: int, device: torch.device) -> None:
        self.capacity, self.size, self.ptr = capacity, 0, 0
        self.s = torch.zeros(capacity, width, dtype=torch.long, device=device)
        self.next = torch.zeros_like(self.s)
        self.a = torch.zeros(capacity, dtype=torch.long, device=device)
        self.r = torch.zeros(capacity, device=device)
        self.done = torch.zeros(capacity, dtype=torch.bool, device=device)

    def add(self, s, a, nxt, r, done) -> None:
        slots = (self.ptr + torch.arange(len(s), device=s.device)) % self.capacity
        self.s[slots], self.a[slots], self.next[slots], self.r[slots], self.done[slots] = s, a, nxt, r, done
        self.ptr = int((self.ptr + len(s)) % self.capacity)
        self.size = min(self.capacity, self.size + len(s))

    def sample(self, n: int, generator: torch.Generator):
        i = torch.randint(0, self.size, (n,), generator=generator, device=self.s.device)
        return self.s[i], self.a[i], self.next[i], self.r[i], self.done[i]

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("size", "ptr", "s", "next", "a", "r", "done")}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value.to(self.s.device) if isinstance(value, torch.Tensor) else value)


class DQN(Method):
    """DQN (target network, replay, epsilon-greedy) on the generation MDP, its terminal reward on ``reward_scale``.
    It maximises reward, so it is expected to find high-reward objects but few distinct modes. Its final
    policy is epsilon-greedy in Q (what it samples with)."""

    kind = "dqn"
    Settings = DQNSettings
    stateful = ("q", "target", "opt", "buffer", *Method.stateful)

    @classmethod
    def unsupported(cls, env, settings: DQNSettings) -> str | None:
        if settings.reward_scale not in REWARD_SCALES:
            return f"takes reward_scale in {REWARD_SCALES}, got {settings.reward_scale!r}"
        return super().unsupported(env, settings)

    def __init__(self, task, settings: DQNSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, data=data)
        cfg = settings
        env = self.env
        self.q = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.target = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.target.load_state_dict(self.q.state_dict())
        self.opt = adam(self.q.parameters(), lr=cfg.lr)
        self.buffer = ReplayBuffer(cfg.buffer_size, env.initial_states(1).shape[1], device)

    def greedy(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        values = self.q(self.env.featurize(states)).masked_fill(~mask, -math.inf)
        best = values.argmax(-1, keepdim=True)
        return torch.full_like(values, NEG_INF).scatter(1, best, 0.0)

    def train_step(self) -> dict[str, float]:
        env, cfg = self.env, self.cfg
        with torch.no_grad():
            traj = rollout(env, self.greedy, cfg.batch_size, cfg.epsilon, generator=self.gen)
            _, _, s, a = traj.transitions()
            done = a == env.stop
            r = torch.zeros(len(s), device=s.device)
            r[done] = self.terminal_reward(s[done])
            self.buffer.add(s, a, env.step(s, a), r, done)
        s, a, nxt, r, done = self.buffer.sample(cfg.batch_size * 4, self.gen)
        q_sa = self.q(env.featurize(s)).gather(1, a[:, None])[:, 0]
        with torch.no_grad():
            nxt_q = self.target(env.featurize(nxt)).masked_fill(~env.forward_mask(nxt), -math.inf).max(-1).values
            target = r + torch.where(done, 0.0, nxt_q)
        losses = self.optimise(nn.functional.smooth_l1_loss(q_sa, target))
        if self.step % cfg.target_every == 0:
            self.target.load_state_dict(self.q.state_dict())
        self.count(traj)
        return losses

    def terminal_reward(self, x: torch.Tensor) -> torch.Tensor:
        """The reward of finished objects on the scale ``cfg.reward_scale`` (one counted oracle query each)."""
        log_r = self.task.log_reward(x)
        if self.cfg.reward_scale == "log":
            return log_r
        if self.cfg.reward_scale == "raw":
            raw = log_r.exp()
            if not bool(torch.isfinite(raw).all()):
                top = float(log_r[~torch.isfinite(raw)].max())
                raise FloatingPointError(f"dqn: reward_scale 'raw': R^exponent = exp({top:.4g}) exceeds float32; use "
                                         f"reward_scale 'log' or 'rank' for this task")
            return raw
        return self.oracle.rank((log_r / self.task.exponent).exp())  # R itself: R^exponent may underflow

    def policy(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The epsilon-greedy policy in Q, as log-probabilities."""
        return mixed_table(self.greedy(states, rows, mask), mask, self.cfg.epsilon)
