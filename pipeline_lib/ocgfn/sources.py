"""What adaptation conditions on: a goal-reaching policy P_F(.|s, y), and F(s|y) where it has a flow head.

Sources with one interface, so every adaptation method (exact conversion, amortized predictor) runs
the same code with and without pre-training:
- ``TrainedOCGFN``: the pre-trained outcome-conditioned GFlowNet;
- ``BoltzmannQ``: the goal-conditioned RL baseline's Boltzmann policy (pre-training with ``algorithm: gcrl``);
- ``GoalReaching``: the no-pre-training control of method.md 7, uniform over the moves that keep y
  reachable (the environment's ``can_reach`` test) and stop iff s = y. The conversion is exact for any
  policy that always reaches its goal, so this control converts exactly with no training at all; on a
  tree it is the perfect OC-GFN (F(s|y) = 1[s is a prefix of y]). What pre-training buys is the
  difference between the two rows.

A source maps (states [n, ...], outcomes [n, ...]) to (log F [n], P_F logits [n, A]); F is meaningful
only where ``has_flow`` (the control has no flow head: use ``flow: policy``, F from P_F)."""
from __future__ import annotations

import torch

from pipeline_lib.core.env import TREE
from pipeline_lib.core.nets import NEG_INF, OutcomeConditionedGFlowNet, masked_log_softmax, oc_inputs
from pipeline_lib.core.rollout import Trajectories, rollout

CONTROL = "control"  # the `pretrained:` value of a method entry that adapts the control instead of a model


class TrainedOCGFN:
    """A frozen pre-trained OC-GFN as adaptation reads it (eval mode, no gradients: adaptation never
    changes it)."""

    has_flow = True

    def __init__(self, env, model: OutcomeConditionedGFlowNet) -> None:
        if isinstance(model, torch.nn.Module):
            model = model.eval().requires_grad_(False)
        self.env, self.model = env, model

    def __call__(self, states: torch.Tensor, outcomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        env = self.env
        log_f, logits, _ = self.model(*oc_inputs(env, self.model, states, outcomes))
        return log_f, logits


class BoltzmannQ(TrainedOCGFN):
    """The goal-conditioned RL baseline's policy (ocgfn/gcrl.py) as a source: softmax(Q(s, .|y) / temperature)
    from its Q network (the OC-GFN's architecture, Q-values in the P_F logits). It has no flow head (F from
    its visit probabilities: ``flow: policy``) and, unlike the control, may miss y: the conversion is then
    inexact by what it misses."""

    has_flow = False

    def __init__(self, env, model: OutcomeConditionedGFlowNet, temperature: float) -> None:
        super().__init__(env, model)
        self.temperature = temperature

    def __call__(self, states: torch.Tensor, outcomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, q = super().__call__(states, outcomes)
        return torch.zeros(len(states), device=states.device), q / self.temperature


class GoalReaching:
    """The control: uniform over the valid moves whose child can still produce y; at y, stop only.
    Where y cannot be reached from s (never visited on the way to y) it is uniform over the valid moves,
    a placeholder that every use weighs by F(s|y) = 0."""

    has_flow = False

    def __init__(self, env) -> None:
        self.env = env

    @torch.no_grad()
    def __call__(self, states: torch.Tensor, outcomes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        env = self.env
        mask = env.forward_mask(states)
        rows, acts = mask.nonzero(as_tuple=True)
        moves = acts != env.stop
        rows, acts = rows[moves], acts[moves]
        keeps = torch.zeros_like(mask)
        keeps[rows, acts] = env.can_reach(env.step(states[rows], acts), outcomes[rows])
        return torch.zeros(len(states), device=states.device), self.logits(keeps, env.same(states, outcomes), mask)

    def logits(self, keeps: torch.Tensor, at_goal: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P_F logits [n, A] from which moves keep y reachable (``keeps``, stop column ignored): where each
        outcome's sub-DAG is listed, its moves that stay inside it are those, and ``tables.ancestor_flows``
        calls this directly instead of testing reachability again at every child."""
        keep = keeps.clone()
        keep[at_goal] = False
        keep[:, self.env.stop] = at_goal & mask[:, self.env.stop]
        keep = torch.where(keep.any(-1, keepdim=True), keep, mask)
        return torch.zeros(mask.shape, device=mask.device).masked_fill(~keep, NEG_INF)


def paths_to(env, outcomes: torch.Tensor, generator: torch.Generator | None = None) -> Trajectories:
    """Trajectories ending at ``outcomes``, drawn from the control (on a tree each object's one path, built
    directly by ``env.path_step``; on a DAG uniform over the moves that keep it reachable): how real objects
    become training trajectories."""
    if env.capabilities()[TREE] is None:
        depth = env.level(outcomes)
        steps = torch.arange(int(depth.max()) + 2, device=outcomes.device)  # every move, the stop, the end
        b = torch.arange(len(outcomes), device=outcomes.device).repeat(len(steps))
        j = torch.minimum(steps.repeat_interleave(len(outcomes)), depth[b])
        states, actions = env.path_step(outcomes, b, j)
        states = states.view(len(steps), len(outcomes), *states.shape[1:])
        valid = steps[:-1, None] <= depth[None, :]
        actions = actions.view(len(steps), len(outcomes))[:-1].masked_fill(~valid, -1)
        return Trajectories(states, actions, valid, outcomes.clone())
    return control_rollout(env, outcomes, generator)


def control_rollout(env, outcomes: torch.Tensor, generator: torch.Generator | None = None) -> Trajectories:
    """Trajectories of the no-pre-training control towards ``outcomes`` (``GoalReaching``), each ending at its
    outcome wherever ``can_reach`` keeps its contract (``domains.contract`` checks that it does)."""
    control = GoalReaching(env)

    def policy(states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(control(states, outcomes[rows])[1], mask)
    return rollout(env, policy, len(outcomes), generator=generator)


def pretrained_source(pretrained: str, path: str | None, env, device: torch.device):
    """The source a method entry's ``pretrained:`` names: the control, or the model file of that variant."""
    if pretrained == CONTROL:
        return GoalReaching(env)
    from pipeline_lib.ocgfn.pretrain import load_pretrained

    if path is None:
        raise ValueError(f"pretrained: {pretrained!r} names a pre-trained variant, but no model file was given")
    model, cfg = load_pretrained(path, env, device)
    if cfg.get("algorithm", "ocgfn") == "gcrl":
        return BoltzmannQ(env, model, cfg["temperature"])
    return TrainedOCGFN(env, model)
