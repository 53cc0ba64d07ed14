"""Per-transition terms of a flow model along batched trajectories (shared by every DB-style loss)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pipeline_lib.nets import masked_log_softmax, uniform_log_pb
from pipeline_lib.rollout import Trajectories

# model(states [n, ...], rows [n]) -> (log F [n], P_F logits [n, A], P_B logits [n, A_back] or None)
FlowFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


@dataclass
class TransitionTerms:
    """log F(s), log P_F(s'|s), log F(s'), log P_B(s|s') for every valid transition, flat."""

    t: torch.Tensor
    b: torch.Tensor
    state: torch.Tensor
    next_state: torch.Tensor
    action: torch.Tensor
    is_stop: torch.Tensor
    log_f: torch.Tensor
    log_pf: torch.Tensor
    log_f_next: torch.Tensor
    log_pb: torch.Tensor


def transition_terms(env, traj: Trajectories, model: FlowFn) -> TransitionTerms:
    """Evaluate ``model`` once on every distinct visited state and gather the DB terms."""
    n_t1, n_b = traj.states.shape[:2]
    exist = torch.cat([torch.ones_like(traj.valid[:1]), traj.valid], dim=0)
    es, eb = exist.nonzero(as_tuple=True)
    flat_states = traj.states[es, eb]
    log_f_flat, logits_flat, pb_flat = model(flat_states, eb)
    pos = torch.full((n_t1, n_b), -1, dtype=torch.long, device=es.device)
    pos[es, eb] = torch.arange(len(es), device=es.device)

    t, b = traj.valid.nonzero(as_tuple=True)
    here, there = pos[t, b], pos[t + 1, b]
    action = traj.actions[t, b]
    state, next_state = flat_states[here], flat_states[there]
    is_stop = action == env.stop
    log_pf = masked_log_softmax(logits_flat[here], env.forward_mask(state)).gather(1, action[:, None])[:, 0]
    back_mask = env.backward_mask(next_state)
    if pb_flat is None:
        log_pb = uniform_log_pb(back_mask)
    else:
        back = env.backward_action(state, action).clamp(min=0, max=back_mask.shape[1] - 1)
        log_pb = masked_log_softmax(pb_flat[there], back_mask).gather(1, back[:, None])[:, 0]
    log_pb = log_pb.masked_fill(is_stop, 0.0)
    return TransitionTerms(t, b, state, next_state, action, is_stop, log_f_flat[here], log_pf,
                           log_f_flat[there], log_pb)
