"""Adaptation methods on sequence domains, where the target R/Z cannot be listed (or barely can).

Every method queries the reward only through the task's ``Oracle`` (discovery.py), and every
curve row reports the same columns, so methods compare at equal reward calls or equal steps:
- ``amortized``: N(s'|s) and an autoregressive outcome sampler Q(y|s,s') trained on the frozen
  OC-GFN (method.md 4); Q completes s' token by token, so log Q(y|s,s') is exact. Needs
  append-only generation (a completion of s' is then a suffix);
- ``exact``: the exact conversion on an append-only enumerable space (TF-Bind-8), summed over the
  outcomes below each state of the tree, with |Y| reward calls and no training;
- ``scratch``: a DB GFlowNet on R^exponent (also the compute-matched baseline, with more steps);
- ``mcmc``: Metropolis-Hastings with single-site mutations (and insertions / deletions where lengths
  vary) targeting R^exponent;
- ``dqn``: DQN on the same MDP, reward R^exponent at the stop transition.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from pipeline_lib.adapt import AdaptConfig
from pipeline_lib.tasks.oracle import Oracle
from pipeline_lib.core.nets import NEG_INF, GFlowNet, OutcomeConditionedGFlowNet, masked_log_softmax, mlp
from pipeline_lib.ocgfn.pretrain import db_loss, db_rollout, gfn_policy
from pipeline_lib.core.rollout import rollout
from pipeline_lib.runtime import seed_everything
from pipeline_lib.domains.sequence.rewards import flush_caches
from pipeline_lib.core.training import Trainer


class SequenceTask:
    """A downstream reward on a sequence environment, queried through a discovery-tracking oracle."""

    def __init__(self, env, reward: Callable[[torch.Tensor], torch.Tensor], modes, exponent: float = 1.0,
                 top_k: int = 100) -> None:
        self.env, self.reward, self.exponent = env, reward, exponent
        self.oracle = Oracle(reward, modes, top_k, env.object_keys, env.diversity)

    def log_reward(self, x: torch.Tensor) -> torch.Tensor:
        """exponent * log R(x), through the counting oracle (what the methods train on)."""
        return self.exponent * self.oracle(x).clamp(min=1e-30).log()


class SampleTrainer(Trainer):
    """Bookkeeping shared by the sequence methods: counters, oracle state and curve rows."""

    def __init__(self, task: SequenceTask, cfg: AdaptConfig, seed: int, device: torch.device) -> None:
        super().__init__()
        self.task, self.env, self.cfg, self.device = task, task.env, cfg, device
        self.steps, self.eval_every, self.checkpoint_every = cfg.steps, cfg.eval_every, cfg.checkpoint_every
        self.gen = seed_everything(seed, device)
        self.oracle = task.oracle
        self.trajectories = 0
        self.transitions = 0

    def on_checkpoint(self) -> None:
        flush_caches()

    def count(self, traj) -> None:
        self.trajectories += traj.n
        self.transitions += int(traj.valid.sum())

    def optimise(self, loss: torch.Tensor) -> dict[str, float]:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {"loss": loss.item()}

    def evaluate(self, losses: dict[str, float]) -> dict[str, Any]:
        return {"step": self.step, "trajectories": self.trajectories, "transitions": self.transitions,
                **self.oracle.row(), **losses}

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` objects from the final sampler (uncounted: evaluation, not search)."""
        raise NotImplementedError


class SequenceScratch(SampleTrainer):
    """A DB GFlowNet trained from scratch on R^exponent."""

    name = "scratch"
    stateful = ("model", "opt", "oracle", "trajectories", "transitions")

    def __init__(self, task: SequenceTask, cfg: AdaptConfig, seed: int, device: torch.device) -> None:
        super().__init__(task, cfg, seed, device)
        env = self.env
        self.model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, cfg.hidden, cfg.layers,
                              learn_pb=False).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

    def train_step(self) -> dict[str, float]:
        traj, terms = db_rollout(self.env, self.model, self.cfg.batch_size, self.cfg.epsilon, self.gen)
        losses = self.optimise(db_loss(terms, self.task.log_reward(traj.terminals)))
        self.count(traj)
        return losses

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return rollout(self.env, gfn_policy(self.env, self.model), n, generator=generator).terminals


@torch.no_grad()
def path_log_probs(env, model: OutcomeConditionedGFlowNet, y: torch.Tensor, upto: torch.Tensor,
                   flow: str) -> torch.Tensor:
    """For append-only generation, log F(s|y) + log P_F(a|s,y) where s = the first ``upto`` tokens of
    y and a the next action on y's path (its next token, or stop once s = y).

    ``flow='policy'``: F(s|y) is the probability that the y-conditioned policy follows y's path to
    s, the product of P_F along it (exact on a tree); ``'learned'``: the flow head at s.
    """
    m, length = y.shape
    pos = torch.arange(length, device=y.device)
    depth = torch.arange(length + 1, device=y.device)[:, None].expand(-1, m)  # [L+1, M]
    keep = depth <= upto[None, :] if flow == "policy" else depth == upto[None, :]
    j, b = keep.nonzero(as_tuple=True)
    prefix = torch.where(pos[None, :] < j[:, None], y[b], env.pad)
    size = env.lengths(y)[b]
    action = torch.where(j < size, y[b, j.clamp(max=length - 1)], torch.full_like(j, env.stop))
    log_f, logits, _ = model(env.featurize(prefix), env.featurize(y[b]), env.is_initial(prefix))
    log_pf = masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0]
    terms = log_pf if flow == "policy" else log_f + log_pf
    return torch.zeros(m, device=y.device).index_add(0, b, terms)


def _require_append(env, method: str) -> None:
    if getattr(env, "prepend", False):
        raise ValueError(f"{method} on sequences needs append-only generation (envs.*.params.mode: append): a "
                         "completion of s' is then a suffix, so Q(y|s,s') and F(s|y) are exact")


class SequenceAmortized(SampleTrainer):
    """N(s'|s) and an autoregressive Q(y|s,s'), fitted to R(y) F(s|y) P_F(s'|s,y) of the frozen OC-GFN."""

    name = "amortized"
    stateful = ("n_net", "q_net", "opt", "oracle", "trajectories", "transitions")

    def __init__(self, task: SequenceTask, model: OutcomeConditionedGFlowNet, cfg: AdaptConfig, seed: int,
                 device: torch.device) -> None:
        super().__init__(task, cfg, seed, device)
        env = self.env
        _require_append(env, "amortized")
        self.model = model.eval().requires_grad_(False)
        self.n_net = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.q_net = mlp(env.feature_dim + env.length + 1, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.opt = torch.optim.Adam([*self.n_net.parameters(), *self.q_net.parameters()], lr=cfg.lr)

    def policy(self, states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(self.n_net(self.env.featurize(states)), self.env.forward_mask(states))

    def q_log_probs(self, states: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
        """Q's next-token distribution when completing a sequence whose given part has ``anchor`` tokens."""
        env = self.env
        inp = torch.cat([env.featurize(states), nn.functional.one_hot(anchor, env.length + 1).float()], -1)
        return masked_log_softmax(self.q_net(inp), env.forward_mask(states))

    def complete(self, start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outcomes drawn from a tempered, epsilon-mixed Q from ``start``, and their exact log Q (with grad)."""
        env, cfg = self.env, self.cfg
        anchor = env.lengths(start)
        with torch.no_grad():
            def proposal(states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
                return torch.log_softmax(self.q_log_probs(states, anchor[rows]) / cfg.q_temperature, -1)
            comp = rollout(env, proposal, len(start), cfg.q_epsilon, generator=self.gen, start=start)
        _, b, s, a = comp.transitions()
        lp = self.q_log_probs(s, anchor[b]).gather(1, a[:, None])[:, 0]
        return comp.terminals, torch.zeros(len(start), device=start.device).index_add(0, b, lp)

    def train_step(self) -> dict[str, float]:
        env, cfg = self.env, self.cfg
        traj = rollout(env, self.policy, cfg.batch_size, cfg.epsilon, generator=self.gen)
        _, _, s, a = traj.transitions()
        is_stop = a == env.stop
        reps = torch.where(is_stop, 1, cfg.outcomes_per_transition)  # after stop, y = s for sure
        rep = torch.arange(len(s), device=s.device).repeat_interleave(reps)
        y = env.step(s[rep], a[rep])
        log_q = torch.zeros(len(rep), device=s.device)
        grow = ~is_stop[rep]
        if grow.any():
            y_grow, log_q_grow = self.complete(y[grow])
            y = y.index_put((grow.nonzero(as_tuple=True)[0],), y_grow)
            log_q = log_q.index_put((grow.nonzero(as_tuple=True)[0],), log_q_grow)
        log_r = self.task.log_reward(y)
        log_fpf = path_log_probs(env, self.model, y, env.lengths(s)[rep], cfg.flow)
        log_n = self.n_net(env.featurize(s)).gather(1, a[:, None])[:, 0]
        losses = self.optimise((log_n[rep] + log_q - log_r - log_fpf).pow(2).mean())
        self.count(traj)
        return losses

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return rollout(self.env, self.policy, n, generator=generator).terminals


@torch.no_grad()
def tree_conversion(env, model: OutcomeConditionedGFlowNet, log_r: torch.Tensor, flow: str,
                    chunk: int = 8192) -> torch.Tensor:
    """Exact conversion on an enumerable append-only space: the table [S, A] of
    P(a|s) proportional to sum over outcomes y below s.a of R(y) F(s|y) P_F(a|s,y).

    On a tree, the outcomes reachable through (s, a) are those whose path passes there, so the sum
    is a scatter over (y, depth) pairs: |Y| x (L+1) model evaluations instead of |S| x |Y|.
    ``log_r`` is [Y] over ``env.terminal_states()``.
    """
    _require_append(env, "exact")
    ys = env.terminal_states()
    m, length = ys.shape
    pos = torch.arange(length, device=ys.device)
    idx, act, weight = [], [], []
    for lo in range(0, m, chunk):
        y = ys[lo:lo + chunk]
        size = env.lengths(y)
        depth = torch.arange(length + 1, device=y.device)[None, :].expand(len(y), -1)
        b, j = (depth <= size[:, None]).nonzero(as_tuple=True)  # each outcome's prefixes, shallow first
        prefix = torch.where(pos[None, :] < j[:, None], y[b], env.pad)
        action = torch.where(j < size[b], y[b, j.clamp(max=length - 1)], torch.full_like(j, env.stop))
        log_f, logits, _ = model(env.featurize(prefix), env.featurize(y[b]), env.is_initial(prefix))
        log_pf = masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0]
        if flow == "policy":  # F(prefix_j|y) P_F = product of P_F along y's own path up to depth j
            path = torch.zeros(len(y), length + 1, device=y.device)
            path[b, j] = log_pf
            terms = path.cumsum(1)[b, j]  # per-outcome sums of at most L+1 terms: no round-off build-up
        else:
            terms = log_f + log_pf
        idx.append(env.index(prefix))
        act.append(action)
        weight.append(log_r[lo:lo + chunk][b] + terms)
    idx, act, weight = torch.cat(idx), torch.cat(act), torch.cat(weight)
    flat = idx * env.n_actions + act
    table = torch.full((env.n_states * env.n_actions,), NEG_INF, device=ys.device)
    table = table.scatter_reduce(0, flat, weight, reduce="amax")
    total = torch.zeros_like(table).index_add(0, flat, (weight - table[flat]).exp())
    table = torch.where(total > 0, table + total.clamp(min=1e-30).log(), table).view(env.n_states, env.n_actions)
    return masked_log_softmax(table, env.forward_mask(env.all_states()) & (table > NEG_INF / 2))


class MCMC(SampleTrainer):
    """Metropolis-Hastings on R^exponent: ``batch_size`` chains, one local move each per step (see propose)."""

    name = "mcmc"
    stateful = ("x", "log_r", "accepted", "oracle", "trajectories", "transitions")

    def __init__(self, task: SequenceTask, cfg: AdaptConfig, seed: int, device: torch.device) -> None:
        super().__init__(task, cfg, seed, device)
        self.x = self.env.random_outcomes(cfg.batch_size, self.gen)
        self.log_r = task.log_reward(self.x)
        self.accepted = 0

    def propose(self, x: torch.Tensor, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A proposal, its log Hastings correction log q(x|x') - log q(x'|x), and which rows moved.

        Substitution: one uniformly chosen token becomes a different uniform token (symmetric). Where
        lengths vary (min_length < length), each chain instead picks substitution, insertion or
        deletion with probability 1/3: insertion of a uniform token at one of the n+1 gaps and deletion
        of one of the n tokens are each other's reverse, so the correction is +log V for an insertion
        and -log V for a deletion; a move that would leave [min_length, length] keeps x (no reward call).
        """
        env = self.env
        n = len(x)
        size = env.lengths(x)
        rows = torch.arange(n, device=x.device)
        site = (torch.rand(n, generator=generator, device=x.device) * size).long()
        shift = torch.randint(1, env.vocab, (n,), generator=generator, device=x.device)
        new = x.clone()
        new[rows, site] = (x[rows, site] + shift) % env.vocab
        moved = torch.ones(n, dtype=torch.bool, device=x.device)
        log_q = torch.zeros(n, device=x.device)
        if env.min_length == env.length:
            return new, log_q, moved
        move = torch.randint(0, 3, (n,), generator=generator, device=x.device)
        gap = (torch.rand(n, generator=generator, device=x.device) * (size + 1)).long()
        token = torch.randint(0, env.vocab, (n,), generator=generator, device=x.device)
        pos = torch.arange(env.length, device=x.device)[None, :]
        pad = torch.full((n, 1), env.pad, dtype=x.dtype, device=x.device)
        right = torch.cat([pad, x[:, :-1]], dim=1)  # right[:, j] = x[:, j - 1]
        inserted = torch.where(pos < gap[:, None], x, torch.where(pos == gap[:, None], token[:, None], right))
        deleted = torch.where(pos < site[:, None], x, torch.cat([x[:, 1:], pad], dim=1))
        ins = (move == 1) & (size < env.length)
        dele = (move == 2) & (size > env.min_length)
        new = torch.where(ins[:, None], inserted, torch.where(dele[:, None], deleted, new))
        moved = (move == 0) | ins | dele
        log_q = (ins.float() - dele.float()) * math.log(env.vocab)
        return torch.where(moved[:, None], new, x), log_q, moved

    def mh_step(self, reward: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator) -> None:
        proposal, log_q, moved = self.propose(self.x, generator)
        log_r_new = self.log_r.clone()
        if moved.any():
            log_r_new[moved] = reward(proposal[moved])
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
        reward = lambda x: self.task.exponent * self.task.reward(x).clamp(min=1e-30).log()  # noqa: E731
        out = []
        while sum(len(o) for o in out) < n:
            self.mh_step(reward, generator)
            out.append(self.x.clone())
        return torch.cat(out)[:n]


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
            setattr(self, key, value)


class DQN(SampleTrainer):
    """DQN (target network, replay, epsilon-greedy) on the generation MDP with terminal reward R^exponent.
    It maximises reward, so it is expected to find high-reward objects but few distinct modes."""

    name = "dqn"
    stateful = ("q", "target", "opt", "buffer", "oracle", "trajectories", "transitions")

    def __init__(self, task: SequenceTask, cfg: AdaptConfig, seed: int, device: torch.device) -> None:
        super().__init__(task, cfg, seed, device)
        env = self.env
        self.q = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.target = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions).to(device)
        self.target.load_state_dict(self.q.state_dict())
        self.opt = torch.optim.Adam(self.q.parameters(), lr=cfg.lr)
        self.buffer = ReplayBuffer(cfg.buffer_size, env.initial_states(1).shape[1], device)

    def greedy(self, states: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        values = self.q(self.env.featurize(states)).masked_fill(~self.env.forward_mask(states), -math.inf)
        best = values.argmax(-1, keepdim=True)
        return torch.full_like(values, NEG_INF).scatter(1, best, 0.0)

    def train_step(self) -> dict[str, float]:
        env, cfg = self.env, self.cfg
        with torch.no_grad():
            traj = rollout(env, self.greedy, cfg.batch_size, cfg.epsilon, generator=self.gen)
            _, _, s, a = traj.transitions()
            done = a == env.stop
            r = torch.zeros(len(s), device=s.device)
            r[done] = self.task.log_reward(s[done]).exp()
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

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return rollout(self.env, self.greedy, n, self.cfg.epsilon, generator=generator).terminals
