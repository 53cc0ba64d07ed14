"""What adaptation reads from a goal-reaching source (the frozen OC-GFN or the no-pre-training control,
``ocgfn.sources``): dense tables over every (state, outcome) pair of an enumerable space, the terms
along an outcome's one path on a tree, or over each outcome's sub-DAG where the environment lists
ancestors."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from pipeline_lib.core.env import ENUMERABLE
from pipeline_lib.core.exact import StateGraph, visit_probabilities
from pipeline_lib.core.nets import masked_log_softmax
from pipeline_lib.ocgfn.sources import GoalReaching

FLOW_SOURCES = ("learned", "policy")


@torch.no_grad()
def ocgfn_tables(env, source, chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The source's log F(s|y) [S, Y] and log P_F(.|s,y) [S, Y, A] for every state and outcome."""
    states = env.all_states()
    n = len(states)
    mask = env.forward_mask(states)
    log_f = torch.empty(n, n, device=states.device)
    log_pf = torch.empty(n, n, env.n_actions, device=states.device)
    per = max(1, chunk // n)
    for lo in range(0, n, per):
        ys = torch.arange(lo, min(lo + per, n), device=states.device)
        s_idx = torch.arange(n, device=states.device).repeat(len(ys))
        y_idx = ys.repeat_interleave(n)
        f, logits = source(states[s_idx], states[y_idx])
        log_f[s_idx, y_idx] = f
        log_pf[s_idx, y_idx] = masked_log_softmax(logits, mask[s_idx])
    return log_f, log_pf


def check_flow(source, flow: str) -> None:
    if flow not in FLOW_SOURCES:
        raise ValueError(f"flow: expected one of {FLOW_SOURCES}, got {flow!r}")
    if flow == "learned" and not source.has_flow:
        raise ValueError(f"flow: 'learned' needs a flow head, and {type(source).__name__} has none; use flow: policy")


def flow_tables(env, graph: StateGraph, source, flow: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(log F [S, Y], log P_F [S, Y, A]); with ``flow='policy'`` F is the exact visit probability of
    the y-conditioned policy instead of the flow head (consistent with P_F by construction)."""
    check_flow(source, flow)
    log_f, log_pf = ocgfn_tables(env, source)
    if flow == "policy":
        log_f = visit_probabilities(graph, log_pf).clamp(min=1e-30).log()
    return log_f, log_pf


def reachability(env, graph: StateGraph) -> torch.Tensor:
    """Bool [S, Y]: outcome y can be produced from state s."""
    s = graph.states
    reach = env.can_reach(s[:, None, :].expand(-1, len(s), -1), s[None, :, :].expand(len(s), -1, -1))
    if reach.shape != (len(s), len(s)):
        raise ValueError(f"{type(env).__name__}.can_reach gave shape {tuple(reach.shape)} on [S, Y, ...] pairs, "
                         f"expected {(len(s), len(s))}: it must work over any leading dimensions (core/env.py)")
    return reach


@torch.no_grad()
def path_log_probs(env, source, y: torch.Tensor, upto: torch.Tensor, flow: str) -> torch.Tensor:
    """On a tree, log F(s|y) + log P_F(a|s,y) where s is the state at depth ``upto`` on y's one path and a
    the next action on it (``env.path_step``).

    ``flow='policy'``: F(s|y) is the probability that the y-conditioned policy follows y's path to
    s, the product of P_F along it (exact on a tree); ``'learned'``: the flow head at s.
    """
    check_flow(source, flow)
    m = len(y)
    depth = torch.arange(env.max_length, device=y.device)[:, None].expand(-1, m)  # [L+1, M]
    keep = depth <= upto[None, :] if flow == "policy" else depth == upto[None, :]
    j, b = keep.nonzero(as_tuple=True)
    prefix, action = env.path_step(y, b, j)
    log_f, logits = source(prefix, y[b])
    log_pf = masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0]
    terms = log_pf if flow == "policy" else log_f + log_pf
    return torch.zeros(m, device=y.device).index_add(0, b, terms)


@torch.no_grad()
def path_log_prob_table(env, source, y: torch.Tensor, flow: str) -> torch.Tensor:
    """On a tree, ``path_log_probs`` of every depth at once: [M, max_length], entry (m, d) the value for
    y[m] with ``upto = d`` (d <= y's length; later entries are 0). One source evaluation per prefix of y,
    where calling ``path_log_probs`` for each of y's transitions would evaluate its early prefixes again."""
    check_flow(source, flow)
    m = len(y)
    depth = torch.arange(env.max_length, device=y.device)[:, None].expand(-1, m)
    keep = depth <= env.level(y)[None, :]
    j, b = keep.nonzero(as_tuple=True)
    prefix, action = env.path_step(y, b, j)
    log_f, logits = source(prefix, y[b])
    log_pf = masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0]
    table = torch.zeros(m, env.max_length, device=y.device)
    if flow == "policy":
        return table.index_put((b, j), log_pf).cumsum(1).masked_fill(~keep.T, 0.0)
    return table.index_put((b, j), log_f + log_pf)


_HASH_MULTIPLIERS: dict[tuple[int, str], torch.Tensor] = {}


def pair_keys(env, rows: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """One int64 key per (outcome row, state) pair where row * index would not fit an int64 (AMP of 50
    residues has no int64 index at all): a fixed random linear hash of the row and the tokens.
    ``ancestor_flows`` refuses a batch whose pairs collide, and ``AncestorFlows.find`` compares the states
    themselves on every lookup, so a hash never decides."""
    flat = torch.cat([rows[:, None], states.flatten(1)], dim=1)
    width = (flat.shape[1], str(flat.device))
    if width not in _HASH_MULTIPLIERS:
        g = torch.Generator().manual_seed(0)
        odd = torch.randint(-(1 << 62), 1 << 62, (flat.shape[1],), generator=g, dtype=torch.long) * 2 + 1
        _HASH_MULTIPLIERS[width] = odd.to(flat.device)
    return (flat * _HASH_MULTIPLIERS[width]).sum(-1)  # int64 arithmetic wraps: a hash modulo 2^64


def indexed(env) -> bool:
    """Whether the environment gives every state an int64 index (else ``pair_keys`` hashes them): its ``indexable``,
    else whether it can be listed (an ``index`` is only promised there; beyond, it may overflow)."""
    indexable = getattr(env, "indexable", None)
    return env.capabilities()[ENUMERABLE] is None if indexable is None else bool(indexable)


@dataclass
class AncestorFlows:
    """The source over every (outcome, ancestor) pair of a batch of outcomes, sorted by ``key``."""

    b: torch.Tensor  # [P] the outcome row of each pair
    states: torch.Tensor  # [P, ...] the ancestor
    key: torch.Tensor  # [P] increasing: b * base + state index, or ``pair_keys`` where there is no index
    base: int  # one more than the largest state index among the ancestors (0: hashed keys)
    mask: torch.Tensor  # [P, A] forward mask of the ancestor
    log_f: torch.Tensor  # [P] log F(s|y): the visit probability (policy) or the flow head (learned)
    log_pf: torch.Tensor  # [P, A] log P_F(.|s, y)
    child: torch.Tensor  # [P, A] the pair of each move's child inside y's sub-DAG, -1 where it leaves it

    def find(self, env, rows: torch.Tensor, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair (row, state) of each query and whether there is one (the state is in that row's
        outcome's sub-DAG)."""
        if self.base:
            idx = env.index(states)
            target = rows * self.base + idx
        else:
            target = pair_keys(env, rows, states)
        pos = torch.searchsorted(self.key, target).clamp(max=len(self.key) - 1)
        found = self.key[pos] == target
        if self.base:
            return pos, found & (idx < self.base)
        return pos, found & (self.b[pos] == rows) & env.same(self.states[pos], states)


@torch.no_grad()
def ancestor_flows(env, source, y: torch.Tensor, flow: str) -> AncestorFlows:
    """The source at every state that can still produce each outcome (``env.ancestors``), with F(s|y) by DP
    over y's sub-DAG for ``flow='policy'``: the visit probability of the y-conditioned policy, where a move
    that leaves the sub-DAG loses its mass (it never reaches y)."""
    check_flow(source, flow)
    b, s, child = env.ancestors(y)
    idx = env.index(s) if indexed(env) else None
    base = int(idx.max()) + 1 if idx is not None and len(idx) else 1  # local to the batch: no listing needed
    if idx is not None and base * len(y) < 2**62:
        key = b * base + idx  # increasing: the pairs come sorted by (row, state)
    else:  # no index, or one too large to pair with the rows in an int64 (protein of 14 residues)
        base, key = 0, pair_keys(env, b, s)
        key, order = key.sort()
        rank = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=order.device))
        b, s = b[order], s[order]
        child = torch.where(child[order] >= 0, rank[child[order].clamp(min=0)], -1)
        if len(key) > 1 and bool((key[1:] == key[:-1]).any()):  # the pairs are distinct: equal keys collide
            raise RuntimeError("two (outcome, ancestor) pairs share a 64-bit hash key; split the batch of outcomes")
    mask = env.forward_mask(s)
    if isinstance(source, GoalReaching):  # the moves that keep y reachable are those that stay in its sub-DAG
        log_f, logits = torch.zeros(len(s), device=s.device), source.logits(child >= 0, env.same(s, y[b]), mask)
    else:
        log_f, logits = source(s, y[b])
    log_pf = masked_log_softmax(logits, mask)
    if flow == "policy":
        level = env.level(s)
        visit = (level == 0).to(log_pf.dtype)  # s0, once per outcome
        for depth in level.unique(sorted=True).tolist():
            rows = (level == depth).nonzero(as_tuple=True)[0]
            src, act = (child[rows] >= 0).nonzero(as_tuple=True)
            src = rows[src]
            visit.index_add_(0, child[src, act], visit[src] * log_pf[src, act].exp())
        log_f = visit.clamp(min=1e-30).log()
    return AncestorFlows(b, s, key, base, mask, log_f, log_pf, child)


@torch.no_grad()
def dag_log_probs(env, source, states: torch.Tensor, outcomes: torch.Tensor, actions: torch.Tensor,
                  flow: str) -> torch.Tensor:
    """log F(s|y) + log P_F(a|s,y) for arbitrary (state, outcome, action) triples on a DAG: the flow head
    at (s, y) (``'learned'``), or F by DP over each distinct outcome's sub-DAG (``'policy'``, needs the
    'ancestors' capability, not a listing of the space nor a state index). A state y cannot produce gets
    log F = log 1e-30."""
    check_flow(source, flow)
    if flow == "learned":
        log_f, logits = source(states, outcomes)
        return log_f + masked_log_softmax(logits, env.forward_mask(states)).gather(1, actions[:, None])[:, 0]
    keys = env.index(outcomes) if indexed(env) else outcomes.flatten(1)
    unique, inverse = torch.unique(keys, dim=0, return_inverse=True)
    first = torch.full((len(unique),), len(outcomes), device=outcomes.device).scatter_reduce(
        0, inverse, torch.arange(len(outcomes), device=outcomes.device), reduce="amin")
    sub = ancestor_flows(env, source, outcomes[first], flow)  # row u: the outcome unique[u]
    pos, found = sub.find(env, inverse, states)
    log_f = torch.where(found, sub.log_f[pos], torch.full_like(sub.log_f[pos], math.log(1e-30)))
    return log_f + sub.log_pf[pos, actions]
