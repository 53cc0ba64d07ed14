"""The exact conversion (method.md 3): P_F^R(s'|s) proportional to sum_y R(y) F(s|y) P_F(s'|s,y), as a
table over every state, with one reward call per outcome and no training.

How the sum is taken is chosen by capability:
- on a tree, the outcomes reachable through (s, a) are those whose one path passes there, so the sum
  is a scatter over (outcome, depth) pairs: |Y| x depth model evaluations (``tree_conversion``);
- on a DAG that lists each outcome's ancestors (the states that can still produce it, e.g. the
  substrings of y for prepend-or-append sequences), the same scatter over (outcome, ancestor) pairs,
  F(s|y) by DP over each outcome's sub-DAG (``sparse_conversion``);
- on any other enumerable space, a dense sum over outcomes reachable from each child, with the
  OC-GFN's tables over every (state, outcome) pair (``core.exact.converted_policy``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline_lib.core.env import ANCESTORS, ENUMERABLE, TREE, missing
from pipeline_lib.core.exact import converted_policy
from pipeline_lib.core.nets import NEG_INF, masked_log_softmax
from pipeline_lib.methods.base import Method
from pipeline_lib.ocgfn.tables import FLOW_SOURCES, ancestor_flows, check_flow, flow_tables, reachability

MAX_DENSE = 1 << 28  # entries of the [S, Y, A] tables a dense conversion may build


@dataclass
class ExactSettings:
    flow: str = "policy"  # policy | learned: where F(s|y) comes from (method.md 3)


@torch.no_grad()
def tree_conversion(env, source, log_r: torch.Tensor, flow: str,
                    chunk: int = 8192) -> torch.Tensor:
    """The converted table [S, A] on an enumerable tree; ``log_r`` is [Y] over ``env.terminal_states()``."""
    reason = missing(env, (TREE, ENUMERABLE))
    if reason:
        raise ValueError(f"tree_conversion {reason}")
    check_flow(source, flow)
    ys = env.terminal_states()
    m, depth_max = len(ys), env.max_length
    idx, act, weight = [], [], []
    for lo in range(0, m, chunk):
        y = ys[lo:lo + chunk]
        depth = torch.arange(depth_max, device=y.device)[None, :].expand(len(y), -1)
        b, j = (depth <= env.level(y)[:, None]).nonzero(as_tuple=True)  # each outcome's path, shallow first
        prefix, action = env.path_step(y, b, j)
        log_f, logits = source(prefix, y[b])
        log_pf = masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0]
        if flow == "policy":  # F(prefix_j|y) P_F = product of P_F along y's own path up to depth j
            path = torch.zeros(len(y), depth_max, device=y.device)
            path[b, j] = log_pf
            terms = path.cumsum(1)[b, j]  # per-outcome sums of at most L+1 terms: no round-off build-up
        else:
            terms = log_f + log_pf
        idx.append(env.index(prefix))
        act.append(action)
        weight.append(log_r[lo:lo + chunk][b] + terms)
    return _table(env, torch.cat(idx) * env.n_actions + torch.cat(act), torch.cat(weight))


def _table(env, flat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The converted log-policy [S, A] from log-weights of (state, action) entries ``flat`` = s * A + a:
    log-sum-exp per entry, normalised over the valid actions that have any weight."""
    table = torch.full((env.n_states * env.n_actions,), NEG_INF, device=weight.device)
    table = table.scatter_reduce(0, flat, weight, reduce="amax")
    total = torch.zeros_like(table).index_add(0, flat, (weight - table[flat]).exp())
    table = torch.where(total > 0, table + total.clamp(min=1e-30).log(), table).view(env.n_states, env.n_actions)
    return masked_log_softmax(table, env.forward_mask(env.all_states()) & (table > NEG_INF / 2))


@torch.no_grad()
def sparse_conversion(env, source, log_r: torch.Tensor, flow: str, chunk: int = 2048) -> torch.Tensor:
    """The converted table [S, A] on an enumerable DAG that lists each outcome's ancestors: per outcome y,
    the source at every state that can still produce y, F(s|y) the visit probability of the y-conditioned
    policy by DP over y's sub-DAG (``flow='policy'``; a move that leaves the sub-DAG loses its mass, which
    never reaches y) or the flow head (``'learned'``), and R(y) F(s|y) P_F(a|s,y) summed over the y whose
    sub-DAG holds the move (the child for a move, s = y for stop). ``log_r`` is [Y] over terminal_states()."""
    reason = missing(env, (ANCESTORS, ENUMERABLE))
    if reason:
        raise ValueError(f"sparse_conversion {reason}")
    check_flow(source, flow)
    ys, n_act = env.terminal_states(), env.n_actions
    flats, weights = [], []
    for lo in range(0, len(ys), chunk):
        y = ys[lo:lo + chunk]
        sub = ancestor_flows(env, source, y, flow)
        b, s, mask, log_f, log_pf, child = sub.b, sub.states, sub.mask, sub.log_f, sub.log_pf, sub.child
        keep = child >= 0
        keep[:, env.stop] = env.same(s, y[b]) & mask[:, env.stop]
        r, a = keep.nonzero(as_tuple=True)
        flats.append(env.index(s[r]) * n_act + a)
        weights.append(log_r[lo:lo + chunk][b[r]] + log_f[r] + log_pf[r, a])
    return _table(env, torch.cat(flats), torch.cat(weights))


@torch.no_grad()
def dense_conversion(task, source, log_r: torch.Tensor, flow: str) -> torch.Tensor:
    """The converted table [S, A] on any enumerable DAG; outcomes are every state (log R = NEG_INF off
    the terminals), ``log_r`` is [Y] over ``env.terminal_states()``."""
    env, graph = task.env, task.graph
    log_f, log_pf = flow_tables(env, graph, source, flow)
    full = torch.full((env.n_states,), NEG_INF, dtype=log_r.dtype, device=log_r.device)
    full[env.index(env.terminal_states())] = log_r
    return converted_policy(graph, reachability(env, graph), full, log_f, log_pf)


class ExactConversion(Method):
    kind = "exact"
    Settings = ExactSettings
    needs = (ENUMERABLE,)
    uses_pretrained = True
    stateful = ("log_pf", *Method.stateful)

    @classmethod
    def unsupported(cls, env, settings: ExactSettings) -> str | None:
        if settings.flow not in FLOW_SOURCES:
            return f"takes flow in {FLOW_SOURCES}, got {settings.flow!r}"
        reason = super().unsupported(env, settings)
        if reason or env.capabilities()[TREE] is None or env.capabilities()[ANCESTORS] is None:
            return reason
        entries = env.n_states ** 2 * env.n_actions
        if entries > MAX_DENSE:
            return (f"needs a tree, listed ancestors, or a dense [S, Y, A] table within {MAX_DENSE} entries; "
                    f"this space has "
                    f"{env.n_states} states ({entries} entries)")
        return None

    def __init__(self, task, settings: ExactSettings, seed: int, device: torch.device, pretrained=None,
                 data: torch.Tensor | None = None) -> None:
        super().__init__(task, settings, seed, device, pretrained, data)
        log_r = task.log_reward(self.env.terminal_states())  # every outcome is queried once: |Y| reward calls
        if self.env.capabilities()[TREE] is None:
            self.log_pf = tree_conversion(self.env, pretrained, log_r, settings.flow)
        elif self.env.capabilities()[ANCESTORS] is None:
            self.log_pf = sparse_conversion(self.env, pretrained, log_r, settings.flow)
        else:
            self.log_pf = dense_conversion(task, pretrained, log_r, settings.flow)

    def policy(self, states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.log_pf[self.env.index(states)]

    def table(self) -> torch.Tensor:
        return self.log_pf

    def train_step(self) -> dict[str, float]:
        raise RuntimeError("the exact conversion does not train")
