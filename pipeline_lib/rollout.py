"""Batched trajectory sampling: all trajectories advance together, one time step per iteration."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

# policy(states [b, ...], rows [b]) -> masked log-probabilities [b, n_actions]; ``rows`` say which
# trajectories of the batch are still running, so conditioned policies can pick their outcomes.
PolicyFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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

    def transitions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Flat (t, b, state, action) of every valid transition, in a fixed order."""
        t, b = self.valid.nonzero(as_tuple=True)
        return t, b, self.states[t, b], self.actions[t, b]


def sample_actions(log_probs: torch.Tensor, mask: torch.Tensor, epsilon: float, greedy: bool,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Sample from a policy mixed with epsilon of the uniform policy over valid actions."""
    if greedy:
        return log_probs.argmax(-1)
    probs = log_probs.exp()
    if epsilon > 0:
        uniform = mask.float() / mask.sum(-1, keepdim=True)
        probs = (1 - epsilon) * probs + epsilon * uniform
    probs = probs * mask  # masked entries already ~0; this removes round-off mass
    # Exponential race, argmax p / q with q ~ Exp(1): what torch.multinomial does for one draw (same
    # numbers from the same generator), without its per-call validity checks, which cost several
    # synchronising reductions per rollout step. A NaN policy is caught by the NaN-loss guard instead.
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / race).argmax(-1)


def rollout(env, policy: PolicyFn, n: int, epsilon: float = 0.0, greedy: bool = False,
            generator: torch.Generator | None = None, start: torch.Tensor | None = None) -> Trajectories:
    """Roll out ``n`` trajectories from s0 (or from the ``n`` states ``start``) until all have stopped.

    Sampling never needs gradients, so the loop runs in inference mode (no autograd bookkeeping on
    its many small ops); the returned tensors are cloned out of it so that losses may use them."""
    with torch.inference_mode():
        states, actions, valid = _rollout(env, policy, n, epsilon, greedy, generator, start)
    return Trajectories(states.clone(), actions.clone(), valid.clone(), states[-1].clone())


def _rollout(env, policy: PolicyFn, n: int, epsilon: float, greedy: bool, generator: torch.Generator | None,
             start: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    state = env.initial_states(n) if start is None else start
    states, actions, valid = [state], [], []
    every = torch.arange(n, device=state.device)
    running = torch.ones(n, dtype=torch.bool, device=state.device)
    n_running = n
    for _ in range(env.max_length):
        if n_running == n:  # every trajectory still runs: no gather or scatter of rows
            act = sample_actions(policy(state, every), env.forward_mask(state), epsilon, greedy, generator)
            step_act = act
        else:
            rows = running.nonzero(as_tuple=True)[0]
            sub = state[rows]
            act = torch.full((n,), -1, dtype=torch.long, device=state.device)
            act[rows] = sample_actions(policy(sub, rows), env.forward_mask(sub), epsilon, greedy, generator)
            step_act = torch.where(running, act, env.stop)
        state = env.step(state, step_act)
        states.append(state)
        actions.append(act)
        valid.append(running)
        running = running & (act != env.stop)
        n_running = int(running.sum())
        if n_running == 0:
            break
    return torch.stack(states), torch.stack(actions), torch.stack(valid)
