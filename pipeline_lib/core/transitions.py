"""Per-transition terms of a flow model along batched trajectories (shared by every DB-style loss).

Two ways to get them, one per kind of trajectory: ``replayed_terms`` for trajectories the model
sampled itself (on-policy: the loss reuses the outputs computed while sampling, one forward pass
in all, and differentiates them in one stacked backward), ``transition_terms`` for trajectories from
elsewhere (the explorer's, relabelled with another model's outcomes), which need their own forward pass."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from pipeline_lib.core.losses import detailed_balance, masked_mse, subtrajectory_balance, trajectory_balance
from pipeline_lib.core.nets import GFlowNet, masked_log_softmax, taped, uniform_log_pb
from pipeline_lib.core.rollout import Trajectories, rollout

# model(states [n, ...], rows [n]) -> (log F [n], P_F logits [n, A], P_B logits [n, A_back] or None); given
# ``Repeats``, ``transition_terms`` calls model(states [m, ...], rows [n], at [n]): output i is of state at[i]
FlowFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]


@dataclass
class Repeats:
    """Trajectories of a batch that repeat an earlier column's (sets concatenated that hold the same trajectories
    towards other outcomes: ``ocgfn.pretrain.repeated_columns``). ``twins[b]`` >= 0: trajectory b visits the states
    of column ``twins[b]``, the first to hold them, so what depends on a state alone is computed once;
    ``copies[b]`` >= 0: its outcome is that earlier column's too, so all its terms are that column's."""

    twins: torch.Tensor  # [B] long, -1 where the column is the first to hold its trajectory
    copies: torch.Tensor  # [B] long, -1 where no earlier column has the same trajectory and outcome


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


def replayed_terms(env, traj: Trajectories, model: FlowFn) -> TransitionTerms:
    """The DB terms of trajectories that ``model`` sampled, from one pass over the states the rollout evaluated it on
    (a replay of the sampling pass where its tape is replaying, ``nets.taped``). Step t called the policy on the
    running rows in ascending order, which is the order of ``traj.valid.nonzero()``, so output i belongs to
    transition i; log F(s') is the output of the same row one step later. At a stop transition s' is the sink:
    log_f_next there is a placeholder that losses replace by the reward."""
    t, b = traj.valid.nonzero(as_tuple=True)
    state, next_state, action = traj.states[t, b], traj.states[t + 1, b], traj.actions[t, b]
    log_f, logits, pb = model(state, b)
    pos = torch.full(traj.states.shape[:2], -1, dtype=torch.long, device=t.device)
    pos[t, b] = torch.arange(len(t), device=t.device)
    there = pos[t + 1, b].clamp(min=0)  # -1 (no next step) only after a stop
    is_stop = action == env.stop
    log_pf = masked_log_softmax(logits, env.forward_mask(state)).gather(1, action[:, None])[:, 0]
    log_pb = _log_pb(env, state, next_state, action, is_stop, None if pb is None else pb[there])
    return TransitionTerms(t, b, state, next_state, action, is_stop, log_f, log_pf, log_f[there], log_pb)


def transition_terms(env, traj: Trajectories, model: FlowFn, repeats: Repeats | None = None) -> TransitionTerms:
    """Evaluate ``model`` once on every visited state of each trajectory and gather the DB terms. With ``repeats``,
    a trajectory that is an earlier column's again with the same outcome is not evaluated: its terms are read off
    that column's outputs, the same values and, through the shared graph, the same gradient as a pass of its own,
    for none of the cost; and the model gets each twin's states once (``model(states, rows, at)``), so its
    state-only part (an OC-GFN's state embedding and its share of the first layer) is computed once per state."""
    n_t1, n_b = traj.states.shape[:2]
    exist = torch.cat([torch.ones_like(traj.valid[:1]), traj.valid], dim=0)
    if repeats is None:
        es, eb = exist.nonzero(as_tuple=True)
        flat_states = traj.states[es, eb]
        log_f_flat, logits_flat, pb_flat = model(flat_states, eb)
    else:
        es, eb = (exist & (repeats.copies < 0)).nonzero(as_tuple=True)
        us, ub = (exist & (repeats.twins < 0)).nonzero(as_tuple=True)  # each trajectory's states once
        slot = torch.full((n_t1, n_b), -1, dtype=torch.long, device=es.device)
        slot[us, ub] = torch.arange(len(us), device=es.device)
        column = torch.where(repeats.twins < 0, torch.arange(n_b, device=es.device), repeats.twins)
        at = slot[es, column[eb]]
        distinct = traj.states[us, ub]
        flat_states = distinct[at]
        log_f_flat, logits_flat, pb_flat = model(distinct, eb, at)
    pos = torch.full((n_t1, n_b), -1, dtype=torch.long, device=es.device)
    pos[es, eb] = torch.arange(len(es), device=es.device)
    if repeats is not None:
        again = (repeats.copies >= 0).nonzero(as_tuple=True)[0]
        pos[:, again] = pos[:, repeats.copies[again]]

    t, b = traj.valid.nonzero(as_tuple=True)
    here, there = pos[t, b], pos[t + 1, b]
    action = traj.actions[t, b]
    state, next_state = flat_states[here], flat_states[there]
    is_stop = action == env.stop
    log_pf = masked_log_softmax(logits_flat[here], env.forward_mask(state)).gather(1, action[:, None])[:, 0]
    log_pb = _log_pb(env, state, next_state, action, is_stop, None if pb_flat is None else pb_flat[there])
    return TransitionTerms(t, b, state, next_state, action, is_stop, log_f_flat[here], log_pf,
                           log_f_flat[there], log_pb)


def _log_pb(env, state: torch.Tensor, next_state: torch.Tensor, action: torch.Tensor, is_stop: torch.Tensor,
            pb_next: torch.Tensor | None) -> torch.Tensor:
    """log P_B(s|s') from the P_B logits at s' (uniform when not learned); 0 at stop transitions."""
    back_mask = env.backward_mask(next_state)
    if pb_next is None:
        log_pb = uniform_log_pb(back_mask)
    else:
        back = env.backward_action(state, action).clamp(min=0, max=back_mask.shape[1] - 1)
        log_pb = masked_log_softmax(pb_next, back_mask).gather(1, back[:, None])[:, 0]
    return log_pb.masked_fill(is_stop, 0.0)


def gfn_flows(env, model: GFlowNet):
    """FlowFn of an unconditional GFlowNet."""
    return lambda states, rows: model(env.featurize(states))


def gfn_policy(env, model: GFlowNet):
    """PolicyFn of an unconditional GFlowNet."""
    def policy(states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(model(env.featurize(states))[1], mask)
    return policy


def db_loss(terms: TransitionTerms, log_reward: torch.Tensor) -> torch.Tensor:
    """Detailed-balance loss of an unconditional GFlowNet with per-trajectory terminal log-rewards."""
    residual = detailed_balance(terms.log_f, terms.log_pf, terms.log_f_next, terms.log_pb, terms.is_stop,
                                log_reward[terms.b])
    return masked_mse(residual)


def db_rollout(env, model: torch.nn.Module, n: int, epsilon: float, generator: torch.Generator
               ) -> tuple[Trajectories, TransitionTerms]:
    """On-policy trajectories of an unconditional flow model (``GFlowNet``, ``OutcomeFree``) with their DB terms, for
    one forward pass (the sampling one, without autograd) and one stacked backward (``nets.taped``). The model must
    be a deterministic function of the states (no dropout): its MLPs' gradients are taken at the inputs recomputed
    from the stacked states; what lies outside its MLPs is recomputed with autograd."""
    with taped(model) as tape:
        traj = rollout(env, gfn_policy(env, model), n, epsilon, generator=generator)
        tape.replaying = True
        return traj, replayed_terms(env, traj, gfn_flows(env, model))


def per_trajectory(terms: TransitionTerms, values: torch.Tensor, n: int, width: int) -> torch.Tensor:
    """Scatter per-transition ``values`` into a padded [n, width] table indexed by (trajectory, step)."""
    out = torch.zeros(n, width, dtype=values.dtype, device=values.device)
    return out.index_put((terms.b, terms.t), values)


def tb_loss(terms: TransitionTerms, log_z: torch.Tensor, log_reward: torch.Tensor) -> torch.Tensor:
    """Mean squared trajectory-balance residual of ``n = len(log_reward)`` trajectories."""
    n = len(log_reward)
    pf = torch.zeros(n, dtype=terms.log_pf.dtype, device=terms.log_pf.device).index_add(0, terms.b, terms.log_pf)
    pb = torch.zeros_like(pf).index_add(0, terms.b, terms.log_pb)
    return trajectory_balance(log_z, pf, pb, log_reward).pow(2).mean()


def subtb_loss(terms: TransitionTerms, log_reward: torch.Tensor, lam: float) -> torch.Tensor:
    """Sub-trajectory balance over every sub-trajectory of each trajectory (log F of the sink := log R)."""
    n = len(log_reward)
    width = int(terms.t.max()) + 1
    length = torch.zeros(n, dtype=torch.long, device=terms.t.device).index_add(0, terms.b, torch.ones_like(terms.t))
    log_step = per_trajectory(terms, terms.log_pf - terms.log_pb, n, width)
    log_flow = per_trajectory(terms, terms.log_f, n, width + 1)
    log_flow = log_flow.index_put((torch.arange(n, device=length.device), length), log_reward)
    return subtrajectory_balance(log_flow, log_step, length, lam)
