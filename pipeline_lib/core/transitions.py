"""Per-transition terms of a flow model along batched trajectories (shared by every DB-style loss).

One function gets them, ``transition_terms``, for both kinds of trajectory: those the model sampled itself
(on-policy: inside ``nets.taped`` the model's call replays the outputs computed while sampling, one forward pass
in all, differentiated in one stacked backward; ``db_rollout``), and those from elsewhere (the explorer's,
relabelled with another model's outcomes), which need their own forward pass."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from pipeline_lib.core.losses import detailed_balance, masked_mse, subtrajectory_balance, trajectory_balance
from pipeline_lib.core.nets import GFlowNet, masked_log_softmax, taped, uniform_log_pb
from pipeline_lib.core.rollout import Trajectories, rollout

# model(states [n, ...], rows [n]) -> (log F [n], P_F logits [n, A], P_B logits [n, A_back] or None); given
# outcomes, ``transition_terms`` calls model(states [m, ...], rows [n], at [n]): output i is of state at[i]
FlowFn = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]

_INTS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_HASH_SEED = 20261207


def distinct_rows(*parts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inverse [n], first [u])`` over the rows of ``parts`` (equal leading dimension n, a row being its values in
    every part): row i equals row ``first[inverse[i]]``, the first of its kind, and the u distinct rows appear once
    in ``first``. Rows are keyed by a hash of their bits, then checked value by value: a collision (or a NaN) falls
    back to sorting the rows whole, which is exact and slower (``torch.unique(dim=0)``: milliseconds where the hash
    takes a tenth of that)."""
    n = len(parts[0])
    keys = torch.cat([p.reshape(n, -1).contiguous().view(_INTS[p.element_size()]).long() for p in parts], 1)
    _, inverse = torch.unique((keys * _hash_weights(keys.shape[1], keys.device)).sum(1), return_inverse=True)
    first = first_of(inverse, n)
    if not all(torch.equal(p, p[first[inverse]]) for p in parts):
        _, inverse = torch.unique(keys, dim=0, return_inverse=True)
        first = first_of(inverse, n)
    return inverse, first


@functools.lru_cache(maxsize=64)
def _hash_weights(width: int, device: torch.device) -> torch.Tensor:
    """The hash's fixed random weights for rows of ``width`` values, made once per width and device (on CUDA a copy
    from the CPU waits for the queued kernels; a pre-training step hashes several times)."""
    with torch.inference_mode(False):  # a first call inside a rollout would otherwise keep an inference tensor
        weights = torch.randint(-2 ** 62, 2 ** 62, (width,), generator=torch.Generator().manual_seed(_HASH_SEED))
        return weights.to(device)


def first_of(inverse: torch.Tensor, n: int) -> torch.Tensor:
    """The smallest row index of each group of ``inverse`` (its n group ids, e.g. the cells of an index), ``n``
    for a group id below its largest that no row has: a scatter, not a sort."""
    rows = torch.arange(n, device=inverse.device)
    return torch.full((int(inverse.max()) + 1 if n else 0,), n, device=inverse.device).scatter_reduce(
        0, inverse, rows, "amin")


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


def transition_terms(env, traj: Trajectories, model: FlowFn, outcomes: torch.Tensor | None = None
                     ) -> TransitionTerms:
    """Evaluate ``model`` on the state of every valid transition and gather the DB terms. s' of a move is the state of
    the trajectory's next transition (every trajectory ends with a stop), and at a stop s' is the sink, whose log F
    is a placeholder the losses replace and whose log P_B is 0, so no state past a stop is evaluated. The states
    go to the model in the order of ``traj.valid.nonzero()``, which is the order a rollout called the policy in
    (each step's running rows, ascending), so a taped model replays its sampling pass here (``db_rollout``). With
    ``outcomes`` (trajectory b's outcome ``outcomes[b]``, as ``rows`` index them) each distinct (state, outcome) pair
    is evaluated once, its terms read off that one output: the same values and, through the shared graph, the same
    gradient as a pass of its own. A stacked OC-GFN batch repeats many: its rollouts relabelled with what they
    reached, an explorer trajectory that a rollout followed to the same outcome, outcomes drawn twice, and s0 in
    every trajectory towards the same outcome. The model then gets each distinct state once
    (``model(states, rows, at)``), so its state-only part (an OC-GFN's state embedding and its share of the first
    layer) is computed once per state."""
    t, b = traj.valid.nonzero(as_tuple=True)
    state, next_state, action = traj.states[t, b], traj.states[t + 1, b], traj.actions[t, b]
    if outcomes is None:
        log_f, logits, pb = model(state, b)
    else:
        pair, first = distinct_rows(state, outcomes[b])  # row i is pair pair[i], first met at row first[pair[i]]
        at, first_state = distinct_rows(state[first])
        outputs = model(state[first][first_state], b[first], at)
        log_f, logits, pb = (None if out is None else out[pair] for out in outputs)
    pos = torch.full(traj.states.shape[:2], -1, dtype=torch.long, device=t.device)
    here = torch.arange(len(t), device=t.device)
    pos[t, b] = here
    there = pos[t + 1, b]
    there = torch.where(there < 0, here, there)  # after a stop: the sink's placeholder
    is_stop = action == env.stop
    log_pf = masked_log_softmax(logits, env.forward_mask(state)).gather(1, action[:, None])[:, 0]
    log_pb = _log_pb(env, state, next_state, action, is_stop, None if pb is None else pb[there])
    return TransitionTerms(t, b, state, next_state, action, is_stop, log_f, log_pf, log_f[there], log_pb)


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
        return traj, transition_terms(env, traj, gfn_flows(env, model))


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
