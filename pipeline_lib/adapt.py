"""Adaptation of a pre-trained OC-GFN to a downstream reward, and the scratch GFlowNet baseline.

- exact conversion (method.md 3): the converted policy as a table over every state;
- amortized predictor (method.md 4): networks N(s'|s) and Q(y|s,s') trained on the OC-GFN;
- scratch: a DB GFlowNet trained on the reward alone.
Trained methods report, every ``eval_every`` steps, the exact L1/KL of their terminal distribution
to R/Z and the modes found so far, against steps and reward calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pipeline_lib.core.exact import StateGraph, converted_policy, terminal_distribution, visit_probabilities
from pipeline_lib.core.losses import amortized_predictor, masked_mse
from pipeline_lib.tasks.metrics import distribution_metrics
from pipeline_lib.core.nets import GFlowNet, OutcomeConditionedGFlowNet, masked_log_softmax, mlp
from pipeline_lib.ocgfn.pretrain import db_loss, db_rollout
from pipeline_lib.tasks.rewards import CountingReward
from pipeline_lib.core.rollout import rollout
from pipeline_lib.runtime import seed_everything
from pipeline_lib.core.training import Trainer

FLOW_SOURCES = ("learned", "policy")


@dataclass
class AdaptConfig:
    """Settings of the trained adaptation methods (amortized predictor and scratch GFlowNet)."""

    steps: int = 2000
    batch_size: int = 64
    lr: float = 1e-3
    hidden: int = 256
    layers: int = 2
    epsilon: float = 0.05
    outcomes_per_transition: int = 4
    q_temperature: float = 1.0
    q_epsilon: float = 0.1
    flow: str = "policy"  # policy | learned: where F(s|y) comes from (method.md 3)
    buffer_size: int = 50000  # DQN replay capacity (transitions)
    target_every: int = 100  # DQN target-network refresh (steps)
    eval_every: int = 100
    checkpoint_every: int = 500


class Task:
    """A downstream reward on an enumerable environment: its exact target and its modes."""

    def __init__(self, env, graph: StateGraph, reward: CountingReward, log_r: torch.Tensor,
                 modes: torch.Tensor) -> None:
        self.env, self.graph, self.reward = env, graph, reward
        self.log_r, self.modes = log_r, modes  # [S] over outcomes in env.index order (uncounted)
        self.target = torch.softmax(log_r, 0)

    def row(self, log_pf: torch.Tensor) -> dict[str, float]:
        """Exact L1 / KL of a tabular policy's terminal distribution against R/Z."""
        return distribution_metrics(terminal_distribution(self.graph, log_pf), self.target)


@torch.no_grad()
def ocgfn_tables(env, model: OutcomeConditionedGFlowNet, chunk: int = 1 << 16
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Learned log F(s|y) [S, Y] and log P_F(.|s,y) [S, Y, A] for every state and outcome."""
    states = env.all_states()
    n = len(states)
    feats, init, mask = env.featurize(states), env.is_initial(states), env.forward_mask(states)
    log_f = torch.empty(n, n, device=states.device)
    log_pf = torch.empty(n, n, env.n_actions, device=states.device)
    per = max(1, chunk // n)
    for lo in range(0, n, per):
        ys = torch.arange(lo, min(lo + per, n), device=states.device)
        s_idx = torch.arange(n, device=states.device).repeat(len(ys))
        y_idx = ys.repeat_interleave(n)
        f, logits, _ = model(feats[s_idx], feats[y_idx], init[s_idx])
        log_f[s_idx, y_idx] = f
        log_pf[s_idx, y_idx] = masked_log_softmax(logits, mask[s_idx])
    return log_f, log_pf


def flow_tables(env, graph: StateGraph, model: OutcomeConditionedGFlowNet, flow: str
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log F [S, Y], log P_F [S, Y, A]); with ``flow='policy'`` F is the exact visit probability of
    the learned y-conditioned policy instead of the flow head (consistent with P_F by construction)."""
    if flow not in FLOW_SOURCES:
        raise ValueError(f"flow: expected one of {FLOW_SOURCES}, got {flow!r}")
    log_f, log_pf = ocgfn_tables(env, model)
    if flow == "policy":
        log_f = visit_probabilities(graph, log_pf).clamp(min=1e-30).log()
    return log_f, log_pf


def reachability(env, graph: StateGraph) -> torch.Tensor:
    """Bool [S, Y]: outcome y can be produced from state s."""
    s = graph.states
    return env.can_reach(s[:, None, :].expand(-1, len(s), -1), s[None, :, :].expand(len(s), -1, -1))


def exact_conversion(task: Task, model: OutcomeConditionedGFlowNet, flow: str) -> tuple[torch.Tensor, dict]:
    """The converted policy table [S, A] and its single curve row (no training; |Y| reward calls)."""
    log_f, log_pf = flow_tables(task.env, task.graph, model, flow)
    log_r = task.reward(task.graph.states).log()  # every outcome is queried once
    table = converted_policy(task.graph, reachability(task.env, task.graph), log_r, log_f, log_pf)
    row = {"step": 0, "trajectories": 0, "transitions": 0, "reward_calls": task.reward.calls,
           "unique_reward_calls": task.reward.unique_calls,
           "modes_found": float("nan"), **task.row(table)}  # no training samples: see the evaluation
    return table, row


def policy_table(env, graph: StateGraph, logits_fn) -> torch.Tensor:
    """Log-probability table [S, A] of a state-only policy network."""
    with torch.no_grad():
        return masked_log_softmax(logits_fn(env.featurize(graph.states)), graph.mask)


class _TaskTrainer(Trainer):
    """Common bookkeeping of the trained adaptation methods: counters, modes found, curve rows."""

    def __init__(self, task: Task, cfg: AdaptConfig, seed: int, device: torch.device) -> None:
        super().__init__()
        self.task, self.env, self.cfg = task, task.env, cfg
        self.steps, self.eval_every, self.checkpoint_every = cfg.steps, cfg.eval_every, cfg.checkpoint_every
        self.gen = seed_everything(seed, device)
        self.found = torch.zeros_like(task.modes)
        self.trajectories = 0
        self.transitions = 0

    def record(self, traj) -> None:
        """Count a training batch and mark the modes its terminal objects hit."""
        self.trajectories += traj.n
        self.transitions += int(traj.valid.sum())
        self.found[self.env.index(traj.terminals)] |= self.task.modes[self.env.index(traj.terminals)]

    def update(self, loss: torch.Tensor, traj) -> dict[str, float]:
        """One optimiser step on ``loss``, then the bookkeeping of the batch it came from."""
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.record(traj)
        return {"loss": loss.item()}

    def table(self) -> torch.Tensor:
        raise NotImplementedError

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        return {"step": self.step, "trajectories": self.trajectories, "transitions": self.transitions,
                "reward_calls": self.task.reward.calls, "unique_reward_calls": self.task.reward.unique_calls,
                "modes_found": int(self.found.sum()), **self.task.row(self.table()),
                **losses}


class ScratchTrainer(_TaskTrainer):
    """A DB GFlowNet trained from scratch on the downstream reward (the paper's main baseline)."""

    name = "scratch"
    stateful = ("model", "opt", "reward", "found", "trajectories", "transitions")

    def __init__(self, task: Task, cfg: AdaptConfig, seed: int, device: torch.device) -> None:
        super().__init__(task, cfg, seed, device)
        env = self.env
        self.model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg.hidden, cfg.layers,
                              learn_pb=False).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.reward = task.reward

    def train_step(self) -> dict[str, float]:
        traj, terms = db_rollout(self.env, self.model, self.cfg.batch_size, self.cfg.epsilon, self.gen)
        return self.update(db_loss(terms, self.reward(traj.terminals).log()), traj)

    def table(self) -> torch.Tensor:
        return policy_table(self.env, self.task.graph, lambda f: self.model(f)[1])


class OutcomeSampler(nn.Module):
    """Q(y|s,s') as a categorical over the enumerated outcomes, one head per action (s' = s + a)."""

    def __init__(self, feature_dim: int, n_actions: int, n_outcomes: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.n_actions, self.n_outcomes = n_actions, n_outcomes
        self.net = mlp(feature_dim, hidden, layers, n_actions * n_outcomes)

    def forward(self, feats: torch.Tensor, actions: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Log Q(.|s, a) [n, Y] restricted to the ``allowed`` outcomes (those reachable from s')."""
        logits = self.net(feats).view(-1, self.n_actions, self.n_outcomes)
        logits = logits.gather(1, actions[:, None, None].expand(-1, 1, self.n_outcomes))[:, 0]
        return masked_log_softmax(logits, allowed)


class AmortizedTrainer(_TaskTrainer):
    """Learns N(s'|s) and Q(y|s,s') from the frozen OC-GFN (method.md 4); the adapted policy is
    softmax over actions of log N(.|s)."""

    name = "amortized"
    stateful = ("n_net", "q_net", "opt", "reward", "found", "trajectories", "transitions")

    def __init__(self, task: Task, model: OutcomeConditionedGFlowNet, cfg: AdaptConfig, seed: int,
                 device: torch.device) -> None:
        super().__init__(task, cfg, seed, device)
        env = self.env
        self.model = model.eval().requires_grad_(False)
        self.n_net = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.q_net = OutcomeSampler(env.feature_dim, env.n_actions, env.n_states, cfg.hidden, cfg.layers).to(device)
        self.opt = torch.optim.Adam([*self.n_net.parameters(), *self.q_net.parameters()], lr=cfg.lr)
        self.reward = task.reward
        self.reach = reachability(env, task.graph)
        if cfg.flow not in FLOW_SOURCES:
            raise ValueError(f"flow: expected one of {FLOW_SOURCES}, got {cfg.flow!r}")
        self.tables = flow_tables(env, task.graph, model, "policy") if cfg.flow == "policy" else None

    def policy(self, states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(self.n_net(self.env.featurize(states)), self.env.forward_mask(states))

    def oc_terms(self, s: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log F(s|y) and log P_F(a|s,y) of the frozen OC-GFN."""
        env = self.env
        if self.tables is not None:
            si, yi = env.index(s), env.index(y)
            return self.tables[0][si, yi], self.tables[1][si, yi, a]
        log_f, logits, _ = self.model(env.featurize(s), env.featurize(y), env.is_initial(s))
        return log_f, masked_log_softmax(logits, env.forward_mask(s)).gather(1, a[:, None])[:, 0]

    def train_step(self) -> dict[str, float]:
        env, cfg, graph = self.env, self.cfg, self.task.graph
        traj = rollout(env, self.policy, cfg.batch_size, cfg.epsilon, generator=self.gen)
        _, _, s, a = traj.transitions()
        si = env.index(s)
        child = graph.child[si, a]
        is_stop = a == env.stop
        allowed = torch.where(is_stop[:, None], torch.nn.functional.one_hot(si, env.n_states).bool(),
                              self.reach[child.clamp(min=0)])
        feats = env.featurize(s)
        log_q_all = self.q_net(feats, a, allowed)  # [n, Y]
        with torch.no_grad():
            proposal = (1 - cfg.q_epsilon) * torch.softmax(log_q_all / cfg.q_temperature, -1)
            proposal = proposal + cfg.q_epsilon * allowed / allowed.sum(-1, keepdim=True)
            y_idx = torch.multinomial(proposal * allowed, cfg.outcomes_per_transition, replacement=True,
                                      generator=self.gen)  # [n, K]
        k = cfg.outcomes_per_transition
        rep = torch.arange(len(s), device=s.device).repeat_interleave(k)
        y_flat = y_idx.reshape(-1)
        y_states = graph.states[y_flat]
        with torch.no_grad():
            log_r = self.reward(y_states).log()
            log_f, log_pf = self.oc_terms(s[rep], y_states, a[rep])
        log_n = self.n_net(feats).gather(1, a[:, None])[:, 0]
        residual = amortized_predictor(log_n[rep], log_q_all[rep, y_flat], log_r, log_f, log_pf)
        return self.update(masked_mse(residual), traj)

    def table(self) -> torch.Tensor:
        return policy_table(self.env, self.task.graph, self.n_net)
