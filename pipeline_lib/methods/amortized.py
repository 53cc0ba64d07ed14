"""The amortized predictor (method.md 4): networks N(s'|s) and Q(y|s,s') fitted to
N(s'|s) Q(y|s,s') = R(y) F(s|y) P_F(s'|s,y) of the frozen OC-GFN; the adapted policy is N.

How Q proposes outcomes is chosen by capability, the rest is one algorithm:
- on a tree (append-only), ``AutoregressiveQ`` completes s' token by token, so log Q(y|s,s') is exact
  and F(s|y) is the product of P_F along y's one path;
- on a DAG with a canonical completion order (prepend-or-append sequences), ``CompletionQ`` completes s'
  in that order, one trajectory per way y holds s', so log Q is the exact log-sum over the ways;
- on any other enumerable space, ``CategoricalQ`` is a softmax over the outcomes still reachable from
  s' (the sink's outcome after stop), one head per action, with the OC-GFN's dense tables.

Where y comes from is a setting: ``outcomes: q`` (the paper) draws K outcomes from Q per transition, K
reward calls each, so at a given budget it takes few gradient steps; ``outcomes: own`` uses each
trajectory's own terminal as y for all its transitions (one reward call per trajectory, the budget of a
scratch GFlowNet), and on a tree ``q: tied`` drops the Q network: Q(y|s,s') is then the adapted policy's
own probability of completing s' to y. ``init_n: trunk`` starts N from the OC-GFN's networks
(``nets.OutcomeFree``, method.md 4 [choice]).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from pipeline_lib.core.env import ANCESTORS, COMPLETIONS, ENUMERABLE, TREE
from pipeline_lib.core.losses import amortized_predictor, masked_mse
from pipeline_lib.core.nets import masked_log_softmax, mlp
from pipeline_lib.core.rollout import rollout, sample_actions
from pipeline_lib.core.training import adam
from pipeline_lib.methods.base import Method, NetworkSettings
from pipeline_lib.methods.exact_conversion import MAX_DENSE
from pipeline_lib.ocgfn.tables import (
    FLOW_SOURCES,
    dag_log_probs,
    flow_tables,
    path_log_prob_table,
    path_log_probs,
    reachability,
)

MAX_CATEGORICAL = 1 << 14  # outcomes a categorical Q (one logit per action and outcome) may cover
OUTCOMES = ("q", "own")
Q_KINDS = ("learned", "tied")
N_INITS = ("random", "trunk")


@dataclass
class AmortizedSettings(NetworkSettings):
    outcomes_per_transition: int = 4  # K outcomes y drawn from Q per transition
    q_temperature: float = 1.0
    q_epsilon: float = 0.1  # share of the uniform proposal over allowed outcomes
    flow: str = "policy"  # policy | learned: where F(s|y) comes from (method.md 3)
    outcomes: str = "q"  # q | own: y drawn from Q per transition (paper), or each trajectory's own terminal
    q: str = "learned"  # learned | tied (tree, outcomes own): Q = the adapted policy's completion probability
    init_n: str = "random"  # random | trunk: N initialised from the OC-GFN's networks
    embedding_outcomes: int = 1024  # init_n trunk: outcomes whose mean embedding replaces the outcome input


class CategoricalQ(nn.Module):
    """Q(y|s,s') as a categorical over the enumerated outcomes, one head per action (s' = s + a)."""

    def __init__(self, method: "Amortized") -> None:
        super().__init__()
        env, cfg = method.env, method.cfg
        self.n_actions, self.n_outcomes = env.n_actions, env.n_states
        self.net = mlp(env.feature_dim, cfg.hidden, cfg.layers, env.n_actions * env.n_states)
        graph = method.task.graph
        self.reach = reachability(env, graph)
        # which listed states are objects: env.terminal_states(), not every state that could stop (a set listed
        # beyond max_size can, but no trajectory reaches it)
        objects = torch.zeros(env.n_states, dtype=torch.bool, device=graph.mask.device)
        objects[env.index(env.terminal_states())] = True
        self.terminal = objects[None, :]
        self.tables = flow_tables(env, graph, method.model, "policy") if cfg.flow == "policy" else None

    def forward(self, feats: torch.Tensor, actions: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Log Q(.|s, a) [n, Y] restricted to the ``allowed`` outcomes (those reachable from s')."""
        logits = self.net(feats).view(-1, self.n_actions, self.n_outcomes)
        logits = logits.gather(1, actions[:, None, None].expand(-1, 1, self.n_outcomes))[:, 0]
        return masked_log_softmax(logits, allowed)

    def oc_terms(self, method: "Amortized", s: torch.Tensor, y: torch.Tensor, a: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """log F(s|y) and log P_F(a|s,y) of the frozen OC-GFN."""
        env = method.env
        if self.tables is not None:
            si, yi = env.index(s), env.index(y)
            return self.tables[0][si, yi], self.tables[1][si, yi, a]
        log_f, logits = method.model(s, y)
        return log_f, masked_log_softmax(logits, env.forward_mask(s)).gather(1, a[:, None])[:, 0]

    def fpf(self, method: "Amortized", s: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """log F(s|y) + log P_F(a|s,y)."""
        log_f, log_pf = self.oc_terms(method, s, y, a)
        return log_f + log_pf

    def allowed(self, method: "Amortized", s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """Bool [n, Y]: the objects reachable from s' (s itself after stop)."""
        env, graph = method.env, method.task.graph
        si = env.index(s)
        child = graph.child[si, a]
        return torch.where((a == env.stop)[:, None], nn.functional.one_hot(si, env.n_states).bool(),
                           self.reach[child.clamp(min=0)] & self.terminal)

    def own_log_q(self, method: "Amortized", traj, t: torch.Tensor, b: torch.Tensor, s: torch.Tensor,
                  a: torch.Tensor) -> torch.Tensor:
        """log Q(y|s,s') at each transition's own trajectory terminal y."""
        env = method.env
        log_q_all = self(env.featurize(s), a, self.allowed(method, s, a))
        return log_q_all.gather(1, env.index(traj.terminals[b])[:, None])[:, 0]

    def loss(self, method: "Amortized", s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        env, cfg, graph = method.env, method.cfg, method.task.graph
        allowed = self.allowed(method, s, a)
        feats = env.featurize(s)
        log_q_all = self(feats, a, allowed)  # [n, Y]
        with torch.no_grad():
            proposal = (1 - cfg.q_epsilon) * torch.softmax(log_q_all / cfg.q_temperature, -1)
            proposal = proposal + cfg.q_epsilon * allowed / allowed.sum(-1, keepdim=True)
            y_idx = torch.multinomial(proposal * allowed, cfg.outcomes_per_transition, replacement=True,
                                      generator=method.gen)  # [n, K]
        k = cfg.outcomes_per_transition
        rep = torch.arange(len(s), device=s.device).repeat_interleave(k)
        y_flat = y_idx.reshape(-1)
        y_states = graph.states[y_flat]
        # after a stop the K draws are all s itself: one reward call (as the autoregressive Q makes), K loss terms
        asked = (a[rep] != env.stop) | (torch.arange(len(rep), device=s.device) % k == 0)
        with torch.no_grad():
            log_r = method.task.log_reward(y_states[asked])[asked.cumsum(0) - 1]
            log_f, log_pf = self.oc_terms(method, s[rep], y_states, a[rep])
        log_n = method.log_n(feats).gather(1, a[:, None])[:, 0]
        return masked_mse(amortized_predictor(log_n[rep], log_q_all[rep, y_flat], log_r, log_f, log_pf))


class AutoregressiveQ(nn.Module):
    """Q(y|s,s') that completes s' action by action on a tree; the input says where the given part ends."""

    level_inputs = 1  # one-hots of width max_length beside the state's features (here: where s' ends)

    def __init__(self, method: "Amortized") -> None:
        super().__init__()
        env, cfg = method.env, method.cfg
        self.net = mlp(env.feature_dim + self.level_inputs * env.max_length, cfg.hidden, cfg.layers, env.n_actions)

    def log_probs(self, env, states: torch.Tensor, anchor: torch.Tensor, mask: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """Q's next-action distribution when completing a state whose given part ends at depth ``anchor``
        (``mask``: the states' forward mask, where the caller has it)."""
        inp = torch.cat([env.featurize(states), nn.functional.one_hot(anchor, env.max_length).float()], -1)
        return masked_log_softmax(self.net(inp), env.forward_mask(states) if mask is None else mask)

    def complete(self, method: "Amortized", start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outcomes drawn from a tempered, epsilon-mixed Q from ``start``, and their exact log Q (with grad)."""
        env, cfg = method.env, method.cfg
        anchor = env.level(start)
        with torch.no_grad():
            def proposal(states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
                return torch.log_softmax(self.log_probs(env, states, anchor[rows], mask) / cfg.q_temperature, -1)
            comp = rollout(env, proposal, len(start), cfg.q_epsilon, generator=method.gen, start=start)
        _, b, s, a = comp.transitions()
        lp = self.log_probs(env, s, anchor[b]).gather(1, a[:, None])[:, 0]
        return comp.terminals, torch.zeros(len(start), device=start.device).index_add(0, b, lp)

    def loss(self, method: "Amortized", s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        env, cfg = method.env, method.cfg
        is_stop = a == env.stop
        reps = torch.where(is_stop, 1, cfg.outcomes_per_transition)  # after stop, y = s for sure
        rep = torch.arange(len(s), device=s.device).repeat_interleave(reps)
        y = env.step(s[rep], a[rep])
        log_q = torch.zeros(len(rep), device=s.device)
        grow = ~is_stop[rep]
        if grow.any():
            y_grow, log_q_grow = self.complete(method, y[grow])
            y = y.index_put((grow.nonzero(as_tuple=True)[0],), y_grow)
            log_q = log_q.index_put((grow.nonzero(as_tuple=True)[0],), log_q_grow)
        log_r = method.task.log_reward(y)
        log_fpf = self.fpf(method, s[rep], y, a[rep])
        log_n = method.log_n(env.featurize(s)).gather(1, a[:, None])[:, 0]
        return (log_n[rep] + log_q - log_r - log_fpf).pow(2).mean()

    def fpf(self, method: "Amortized", s: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """log F(s|y) + log P_F(a|s,y) of the frozen source, s on y's one path (its prefix at s's depth)."""
        return path_log_probs(method.env, method.model, y, method.env.level(s), method.cfg.flow)

    def own_log_q(self, method: "Amortized", traj, t: torch.Tensor, b: torch.Tensor, s: torch.Tensor,
                  a: torch.Tensor) -> torch.Tensor:
        """log Q(y|s,s') at each transition's own terminal y: Q's log-probabilities of the trajectory's later
        actions, with the given part ending at s'."""
        env = method.env
        i, j = later_transitions(traj, t, b)
        anchor = env.level(env.step(s[i], a[i]))
        lp = self.log_probs(env, s[j], anchor).gather(1, a[j][:, None])[:, 0]
        return torch.zeros(len(t), device=s.device).index_add(0, i, lp)


class CompletionQ(AutoregressiveQ):
    """Q(y|s,s') on a DAG with the 'completions' capability: s' is completed in the environment's canonical
    order (prepend-or-append sequences: appends, then prepends, then stop), in which each way y holds s'
    (an offset) is one trajectory, so log Q(y|s,s') is the log-sum over those ways: exact. Q's input says
    where the given part ends (its length) and the phase (prepends so far). F(s|y) P_F(a|s,y) comes from
    ``dag_log_probs``: the flow head, or the y-conditioned policy's visit probability by DP over y's
    sub-DAG (``flow: policy``, where ancestors are listed)."""

    level_inputs = 2  # where s' ends, and the phase

    def log_probs(self, env, states: torch.Tensor, anchor: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        hot = nn.functional.one_hot
        inp = torch.cat([env.featurize(states), hot(anchor, env.max_length).float(),
                         hot(phase.clamp(max=env.max_length - 1), env.max_length).float()], -1)
        return masked_log_softmax(self.net(inp), env.completion_mask(states, phase))

    def log_q(self, env, starts: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Exact log Q(outcome | start) [n] (with grad): the log-sum over the canonical ways of each row."""
        r, way, states, actions, phase = env.completion_paths(starts, outcomes)
        lp = self.log_probs(env, states, env.level(starts)[r], phase).gather(1, actions[:, None])[:, 0]
        ways = int(way.max()) + 1 if len(way) else 1
        per_way = torch.zeros(len(starts) * ways, device=starts.device).index_add(0, r * ways + way, lp)
        present = torch.zeros(len(starts) * ways, dtype=torch.bool, device=starts.device)
        present[r * ways + way] = True
        return per_way.masked_fill(~present, -math.inf).view(len(starts), ways).logsumexp(1)

    def complete(self, method: "Amortized", start: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Outcomes drawn from a tempered, epsilon-mixed Q in the canonical order, and their exact log Q."""
        env, cfg = method.env, method.cfg
        anchor = env.level(start)
        states, phase = start.clone(), torch.zeros_like(anchor)
        active = torch.arange(len(start), device=start.device)
        with torch.no_grad():
            for _ in range(env.max_length):
                if not len(active):
                    break
                s, ph = states[active], phase[active]
                log_p = torch.log_softmax(self.log_probs(env, s, anchor[active], ph) / cfg.q_temperature, -1)
                a = sample_actions(log_p, env.completion_mask(s, ph), cfg.q_epsilon, False, method.gen)
                states[active], phase[active] = env.step(s, a), env.completion_phase(ph, a)
                active = active[a != env.stop]
        return states, self.log_q(env, start, states)

    def fpf(self, method: "Amortized", s: torch.Tensor, y: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """The same on a DAG: the flow head, or F by DP over y's sub-DAG (``flow: policy``)."""
        return dag_log_probs(method.env, method.model, s, y, a, method.cfg.flow)

    def own_log_q(self, method: "Amortized", traj, t: torch.Tensor, b: torch.Tensor, s: torch.Tensor,
                  a: torch.Tensor) -> torch.Tensor:
        """log Q(y|s,s') at each transition's own terminal y (0 after stop: y = s)."""
        env = method.env
        out = torch.zeros(len(s), device=s.device)
        grow = (a != env.stop).nonzero(as_tuple=True)[0]
        if len(grow):
            out = out.index_put((grow,), self.log_q(env, env.step(s[grow], a[grow]), traj.terminals[b[grow]]))
        return out


def later_transitions(traj, t: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every pair (i, j) of flat transitions (``traj.transitions()`` order) where j comes after i in the same
    trajectory: on a tree, the actions j complete s'_i to the trajectory's terminal."""
    pos = torch.full(traj.valid.shape, -1, dtype=torch.long, device=t.device)
    pos[t, b] = torch.arange(len(t), device=t.device)
    steps = torch.arange(traj.valid.shape[0], device=t.device)
    later = (steps[None, :] > t[:, None]) & traj.valid[:, b].T  # [n, T]
    i, tj = later.nonzero(as_tuple=True)
    return i, pos[tj, b[i]]


class Amortized(Method):
    kind = "amortized"
    Settings = AmortizedSettings
    uses_pretrained = True
    stateful = ("n_net", "q", "opt", *Method.stateful)

    @classmethod
    def unsupported(cls, env, settings: AmortizedSettings) -> str | None:
        for key, allowed in (("flow", FLOW_SOURCES), ("outcomes", OUTCOMES), ("q", Q_KINDS), ("init_n", N_INITS)):
            if getattr(settings, key) not in allowed:
                return f"takes {key} in {allowed}, got {getattr(settings, key)!r}"
        have = env.capabilities()
        if settings.q == "tied" and (settings.outcomes != "own" or have[TREE] is not None):
            return ("takes q: tied only with outcomes: own on a tree (Q is then the policy's completion "
                    f"probability): {have[TREE] or 'set outcomes: own'}")
        if have[TREE] is None:
            return None
        if have[COMPLETIONS] is None:
            if settings.flow == "policy" and have[ANCESTORS]:
                return (f"takes flow: policy on a DAG only where each outcome's ancestors are listed (F by DP over "
                        f"its sub-DAG): {have[ANCESTORS]}; use flow: learned")
            return None
        if have[ENUMERABLE] is not None:
            return (f"needs the 'tree' capability for an autoregressive Q: {have[TREE]}; the 'completions' one for "
                    f"a canonical-order Q: {have[COMPLETIONS]}; or the 'enumerable' one for a categorical Q: "
                    f"{have[ENUMERABLE]}")
        if env.n_states > MAX_CATEGORICAL:
            return (f"needs the 'tree' capability for an autoregressive Q: {have[TREE]}; a categorical Q over "
                    f"{env.n_states} outcomes is more than {MAX_CATEGORICAL}")
        entries = env.n_states ** 2 * env.n_actions
        if entries > MAX_DENSE:
            return (f"needs the 'tree' capability for an autoregressive Q: {have[TREE]}; a categorical Q reads "
                    f"the OC-GFN's [S, Y, A] tables, {entries} entries, more than {MAX_DENSE}")
        return None

    @classmethod
    def without_weights(cls, settings: AmortizedSettings) -> str | None:
        if settings.init_n == "trunk":
            return "settings.init_n: trunk copies a pre-trained OC-GFN's networks; use init_n: random"
        return super().without_weights(settings)

    def __init__(self, task, settings: AmortizedSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, pretrained, data)
        env = self.env
        self.model = pretrained
        if settings.init_n == "trunk":
            from pipeline_lib.ocgfn.pretrain import outcome_free

            self.n_net = outcome_free(env, getattr(pretrained, "model", pretrained), settings.embedding_outcomes,
                                      self.gen)
        else:
            self.n_net = mlp(env.feature_dim, settings.hidden, settings.layers, env.n_actions).to(device)
        if settings.q == "tied":
            self.q = nn.Module()  # no parameters: Q is the policy itself
        else:
            have = env.capabilities()
            kind = AutoregressiveQ if have[TREE] is None else CompletionQ if have[COMPLETIONS] is None else CategoricalQ
            self.q = kind(self).to(device)
        self.opt = adam([*self.n_net.parameters(), *self.q.parameters()], lr=settings.lr)

    def log_n(self, feats: torch.Tensor) -> torch.Tensor:
        """log N(s'|s) [n, A], unnormalised (an edge flow up to the reward's scale)."""
        out = self.n_net(feats)
        return out[1] if isinstance(out, tuple) else out  # OutcomeFree: its P_F logits

    def policy(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(self.log_n(self.env.featurize(states)), mask)

    def train_step(self) -> dict[str, float]:
        traj = rollout(self.env, self.policy, self.cfg.batch_size, self.cfg.epsilon, generator=self.gen)
        t, b, s, a = traj.transitions()
        loss = self.own_terminal_loss(traj, t, b, s, a) if self.cfg.outcomes == "own" else self.q.loss(self, s, a)
        losses = self.optimise(loss)
        self.count(traj)
        return losses

    def own_terminal_loss(self, traj, t: torch.Tensor, b: torch.Tensor, s: torch.Tensor, a: torch.Tensor
                          ) -> torch.Tensor:
        """The loss with y := the terminal of each transition's trajectory: one reward call per trajectory."""
        env = self.env
        y = traj.terminals[b]
        log_r = self.task.log_reward(traj.terminals)[b]
        logits = self.log_n(env.featurize(s))
        log_n = logits.gather(1, a[:, None])[:, 0]
        if self.cfg.q == "tied":
            log_pi = masked_log_softmax(logits, env.forward_mask(s)).gather(1, a[:, None])[:, 0]
            i, j = later_transitions(traj, t, b)
            log_q = torch.zeros(len(t), device=s.device).index_add(0, i, log_pi[j])
        else:
            log_q = self.q.own_log_q(self, traj, t, b, s, a)
        with torch.no_grad():
            if env.capabilities()[TREE] is None:
                log_fpf = path_log_prob_table(env, self.model, traj.terminals, self.cfg.flow)[b, env.level(s)]
            else:
                log_fpf = self.q.fpf(self, s, y, a)
        return masked_mse(amortized_predictor(log_n, log_q, log_r, log_fpf, torch.zeros_like(log_fpf)))
