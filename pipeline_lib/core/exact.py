"""Exact computations on enumerable environments: DP over the DAG, tables, exact conversion."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.core.nets import NEG_INF, masked_log_softmax


def listed_states(env) -> torch.Tensor:
    """``env.all_states()``, checked: the exact tables index states by ``env.index`` and the DP starts at index 0,
    so states listed in another order, an index with gaps or an s0 elsewhere would give wrong tables or a bare
    IndexError."""
    states = env.all_states()
    name = type(env).__name__
    if len(states) != env.n_states:
        raise ValueError(f"{name}.all_states() gives {len(states)} states but n_states = {env.n_states}")
    if not torch.equal(env.index(states).cpu(), torch.arange(len(states))):
        raise ValueError(f"{name}: index(all_states()) must be 0, 1, ..., n_states - 1 in order (list the states "
                         f"in index order, every index once; core/env.py)")
    if int(env.index(env.initial_states(1))[0]) != 0:
        raise ValueError(f"{name}: index(initial_states(1)) must be 0 (s0 first in all_states)")
    return states


@dataclass
class StateGraph:
    """Every state of an enumerable environment and its forward edges, grouped by source level."""

    states: torch.Tensor  # [S, ...] in env.index order
    mask: torch.Tensor  # [S, A] valid forward actions
    child: torch.Tensor  # [S, A] child index of each move (-1 for stop or invalid)
    levels: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]  # per level: (src, action, child)
    stop: int

    @classmethod
    def build(cls, env) -> "StateGraph":
        states = listed_states(env)
        mask = env.forward_mask(states)
        n, n_act = mask.shape
        child = torch.full((n, n_act), -1, dtype=torch.long, device=states.device)
        for a in range(n_act):
            if a == env.stop:
                continue
            rows = mask[:, a].nonzero(as_tuple=True)[0]
            act = torch.full((len(rows),), a, dtype=torch.long, device=states.device)
            child[rows, a] = env.index(env.step(states[rows], act))
        src, act = (child >= 0).nonzero(as_tuple=True)
        lvl = env.level(states)[src]
        levels = []
        for value in lvl.unique(sorted=True).tolist():
            sel = lvl == value
            levels.append((src[sel], act[sel], child[src[sel], act[sel]]))
        return cls(states, mask, child, levels, env.stop)


def visit_probabilities(graph: StateGraph, log_pf: torch.Tensor, start: int = 0) -> torch.Tensor:
    """P(trajectory passes through s) under a forward policy, by DP in topological order.

    ``log_pf`` is [S, *batch, A]; the result is [S, *batch]. With a batch of outcome-conditioned
    policies this is the policy-implied flow F(s|y) of each one.
    """
    flow = torch.zeros(log_pf.shape[:-1], dtype=log_pf.dtype, device=log_pf.device)
    flow[start] = 1.0
    for src, act, child in graph.levels:
        pf = log_pf[src, ..., act].exp()  # [E, *batch]: separated advanced indices go first
        flow.index_add_(0, child, flow[src] * pf)
    return flow


def terminal_distribution(graph: StateGraph, log_pf: torch.Tensor) -> torch.Tensor:
    """Exact P(x) of the terminal objects, [S] (or [S, *batch]) in env.index order."""
    return visit_probabilities(graph, log_pf) * log_pf[..., graph.stop].exp()


def converted_policy(graph: StateGraph, reach: torch.Tensor, log_r: torch.Tensor, log_flow: torch.Tensor,
                     log_pf: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Exact conversion (method.md 3): P_F^R(s'|s) proportional to sum_y R(y) F(s|y) P_F(s'|s,y).

    ``reach`` [S, Y] says y is reachable from s; the sum for a move runs over y reachable from the
    child, for stop only over y = s (the sink is reachable from nothing else). Inputs are
    log R [Y], log F [S, Y], log P_F [S, Y, A]; returns log-probabilities [S, A].
    """
    n, n_act = graph.mask.shape
    out = torch.full((n, n_act), NEG_INF, dtype=log_pf.dtype, device=log_pf.device)
    for lo in range(0, n, chunk):
        rows = torch.arange(lo, min(lo + chunk, n), device=log_pf.device)
        weight = log_r[None, :] + log_flow[rows]  # [b, Y]
        for a in range(n_act):
            if a == graph.stop:
                keep = torch.zeros_like(reach[rows])
                keep[torch.arange(len(rows), device=rows.device), rows] = True
            else:
                child = graph.child[rows, a]
                keep = reach[child.clamp(min=0)] & (child >= 0)[:, None]
            terms = (weight + log_pf[rows, :, a]).masked_fill(~keep, NEG_INF)
            out[rows, a] = torch.logsumexp(terms, dim=-1)
    return masked_log_softmax(out, graph.mask)
