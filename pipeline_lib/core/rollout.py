"""Batched trajectory sampling: all trajectories advance together, one time step per iteration."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

# policy(states [b, ...], rows [b], mask [b, n_actions]) -> masked log-probabilities [b, n_actions]; ``rows`` say
# which trajectories of the batch are still running, so conditioned policies can pick their outcomes; ``mask`` is
# ``env.forward_mask(states)``, which the loop needs for the draw anyway (one mask per step, not two).
PolicyFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Trajectories:
    """A batch of padded trajectories. Transition t goes states[t] -> states[t+1] by actions[t];
    a stop transition keeps the state. ``valid[t, b]`` says transition t of trajectory b exists."""

    states: torch.Tensor  # [T+1, B, ...]
    actions: torch.Tensor  # [T, B], -1 where invalid
    valid: torch.Tensor  # [T, B]
    terminals: torch.Tensor  # [B, ...]

    @property
    def n(self) -> int:
        return self.terminals.shape[0]

    @staticmethod
    def concat(batches: "list[Trajectories]") -> "Trajectories":
        """One batch of the trajectories of ``batches`` (in order), padded to the longest: one forward
        pass over all their states costs less than one per batch."""
        length = max(tr.actions.shape[0] for tr in batches)

        def pad(x: torch.Tensor, extra: int, value) -> torch.Tensor:
            return torch.cat([x, x[-1:].expand(extra, *x.shape[1:]) if value is None
                              else torch.full((extra, *x.shape[1:]), value, dtype=x.dtype, device=x.device)])

        parts = [(pad(tr.states, length - tr.actions.shape[0], None), pad(tr.actions, length - tr.actions.shape[0], -1),
                  pad(tr.valid, length - tr.actions.shape[0], False)) for tr in batches]
        return Trajectories(torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1),
                            torch.cat([p[2] for p in parts], 1), torch.cat([tr.terminals for tr in batches]))

    def columns(self, lo: int, hi: int) -> "Trajectories":
        """Trajectories ``lo`` to ``hi - 1`` of the batch (views; time steps where all have stopped stay)."""
        return Trajectories(self.states[:, lo:hi], self.actions[:, lo:hi], self.valid[:, lo:hi], self.terminals[lo:hi])

    def transitions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat (t, b, state, action) of every valid transition, in a fixed order."""
        t, b = self.valid.nonzero(as_tuple=True)
        return t, b, self.states[t, b], self.actions[t, b]


def sample_actions(log_probs: torch.Tensor, mask: torch.Tensor, epsilon: float, greedy: bool,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Sample from a policy mixed with epsilon of the uniform policy over valid actions."""
    return draw(log_probs, mask, epsilon, greedy, generator)[0]


def draw(log_probs: torch.Tensor, mask: torch.Tensor, epsilon: float, greedy: bool,
         generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``sample_actions`` (``log_probs`` of the mask's shape [B, A]) and, bool [B], whether each draw is one a
    working policy makes: the winning
    score, read off the same reduction that picks the action, so the check costs no operation of its
    own in the rollout loop. A NaN on a valid action wins the race and fails the check; so does a
    policy without mass on any valid action (every valid score 0, every invalid one negative)."""
    log_probs = log_probs.detach()  # a caller's log-probabilities may carry a graph for its loss (amortized.py)
    if greedy:  # never an action outside the mask, even from a broken policy (``rollout`` reports those)
        low = torch.finfo(log_probs.dtype).min
        score, actions = torch.where(mask, log_probs.clamp(min=low), float("-inf")).max(-1)
        return actions, score > low  # -inf on the chosen action was clamped to ``low``; NaN compares False
    # In place on tensors this function made: at a small batch each operation costs its dispatch, not its
    # arithmetic, so a fresh result per step is an allocation paid for nothing (the same values either way).
    probs = log_probs.exp()
    if epsilon > 0:  # (1 - eps) p + eps / #valid on the valid actions, in the order the test checks
        uniform = mask.sum(-1, keepdim=True, dtype=probs.dtype).reciprocal_().mul_(epsilon)
        probs = probs.mul_(1 - epsilon).add_(uniform)
    # masked entries already ~0; -1 removes round-off mass and keeps even a policy without mass on
    # the valid actions (all ratios 0) from drawing an invalid one, which could leave the state space
    probs = torch.where(mask, probs, -1.0)
    # Exponential race, argmax p / q with q ~ Exp(1): what torch.multinomial does for one draw (same
    # numbers from the same generator), without its per-call validity checks, which cost several
    # synchronising reductions per rollout step; ``rollout`` checks every draw once at the end instead.
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    score, actions = probs.div_(race).max(-1)
    return actions, score > 0


def rollout(env, policy: PolicyFn, n: int, epsilon: float = 0.0, greedy: bool = False,
            generator: torch.Generator | None = None, start: torch.Tensor | None = None) -> Trajectories:
    """Roll out ``n`` trajectories from s0 (or from the ``n`` states ``start``) until all have stopped.

    Sampling itself never needs gradients, so the loop runs in inference mode (no autograd bookkeeping on its many
    small ops) and the returned tensors are cloned out of it. A loss on the policy's own outputs replays them
    (``nets.taped``, ``transitions.db_rollout``)."""
    with torch.inference_mode():
        states, actions, valid = _rollout(env, policy, n, epsilon, greedy, generator, start)
    return Trajectories(states.clone(), actions.clone(), valid.clone(), states[-1].clone())


def _rollout(env, policy: PolicyFn, n: int, epsilon: float, greedy: bool, generator: torch.Generator | None,
             start: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The loop keeps only the running rows (``rows``, ascending, and their states), so a step issues the policy,
    the mask, the draw, the move and the stop test, and, once some trajectory has stopped, two row selections:
    the padded [T+1, n] tables are built once at the end instead of being scattered into at every step (a rollout
    step is a chain of small operations, and at small batches their count is what a step costs)."""
    state = env.initial_states(n) if start is None else start
    rows = torch.arange(n, device=state.device)
    visited, moved, acts, checks = [], [], [], []  # per step: the running rows' states, rows, actions, checks
    for _ in range(env.max_length):
        mask = env.forward_mask(state)
        act, ok = draw(policy(state, rows, mask), mask, epsilon, greedy, generator)
        visited.append(state)
        moved.append(rows)
        acts.append(act)
        checks.append(ok)
        state = env.step(state, act)
        going = (act != env.stop).nonzero()[:, 0]  # its size is the one synchronisation of a step
        if len(going) == len(rows):
            continue
        if not len(going):
            break
        rows, state = rows[going], state[going]
    else:
        if len(rows):
            _check_draws(checks)  # an invalid draw (e.g. from a state without a valid action) explains an overrun
            raise ValueError(f"{type(env).__name__}.max_length = {env.max_length}, but {len(rows)} trajectories "
                             f"had not stopped after that many transitions; max_length must count the stop")
    _check_draws(checks)
    return _padded(visited, moved, acts, n)


def _check_draws(checks: list[torch.Tensor]) -> None:
    """Every draw of a rollout was one a working policy makes (``draw``): one synchronisation per rollout, not one
    per step."""
    if not torch.cat(checks).all():
        step = next(t for t, ok in enumerate(checks) if not ok.all())
        raise FloatingPointError(f"rollout step {step}: the policy gave NaN, no mass on any valid action, or an "
                                 f"invalid action; check the model (non-finite weights?) or the policy table")


def _padded(visited: list[torch.Tensor], moved: list[torch.Tensor], acts: list[torch.Tensor], n: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The [T+1, n, ...] states, [T, n] actions and valid flags of a rollout from what each step saw of its running
    rows. A trajectory's last transition is its stop, which keeps the state, so its state at every later time is the
    one it stopped in: states[t, b] is the state of b's step min(t, last_b)."""
    n_t = len(acts)
    device = acts[0].device
    t = torch.arange(n_t, device=device).repeat_interleave(torch.tensor([len(r) for r in moved], device=device))
    b = torch.cat(moved)
    actions = torch.full((n_t, n), -1, dtype=torch.long, device=device)
    actions[t, b] = torch.cat(acts)
    valid = actions >= 0
    seen = torch.cat(visited)
    table = seen.new_empty((n_t, n, *seen.shape[1:]))
    table[t, b] = seen
    last = valid.sum(0) - 1
    times = torch.minimum(torch.arange(n_t + 1, device=device)[:, None], last[None, :])
    return table[times, torch.arange(n, device=device)[None, :]], actions, valid
