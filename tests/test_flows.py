"""One forward pass per step: the terms recorded while sampling equal a second pass over the same
trajectories, in value and in gradient, for every environment kind, learned or uniform P_B, and
unconditional or outcome-conditioned models."""
from __future__ import annotations

import pytest
import torch

from pipeline_lib.core.nets import GFlowNet, OutcomeConditionedGFlowNet
from pipeline_lib.core.rollout import rollout
from pipeline_lib.core.transitions import (
    RecordedFlows,
    db_loss,
    gfn_flows,
    gfn_policy,
    recorded_terms,
    transition_terms,
)
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.ocgfn.pretrain import OCGFNPolicy, PretrainConfig, ocgfn_loss

ENVS = {
    "hypergrid": lambda: HyperGrid(ndim=2, side=5),
    "dna_append": lambda: Sequence("ACGT", 4),
    "prepend_append": lambda: Sequence("ab", 4, 1, mode="prepend_append"),
    "variable_length": lambda: Sequence("abc", 5, 1),
}


def grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", ENVS)
@pytest.mark.parametrize("learn_pb", [False, True])
def test_recorded_terms_equal_a_second_pass(name: str, learn_pb: bool) -> None:
    env = ENVS[name]()
    torch.manual_seed(0)
    model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, learn_pb)
    recorded = RecordedFlows(env, gfn_flows(env, model))
    traj = rollout(env, recorded, 40, epsilon=0.1, generator=torch.Generator().manual_seed(1), grad=True)
    # the recording policy samples exactly what the plain policy samples from the same generator
    plain = rollout(env, gfn_policy(env, model), 40, epsilon=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(traj.actions, plain.actions) and torch.equal(traj.valid, plain.valid)

    once = recorded_terms(env, traj, recorded)
    twice = transition_terms(env, traj, gfn_flows(env, model))
    for field in ("t", "b", "state", "next_state", "action", "is_stop"):
        assert torch.equal(getattr(once, field), getattr(twice, field)), field
    move = ~once.is_stop
    assert move.any() and once.is_stop.sum() == 40
    for field in ("log_f", "log_pf", "log_pb"):
        assert torch.allclose(getattr(once, field), getattr(twice, field), atol=1e-5), field
    assert torch.allclose(once.log_f_next[move], twice.log_f_next[move], atol=1e-5)

    log_r = torch.randn(40)
    model.zero_grad()
    loss_once = db_loss(once, log_r)
    loss_once.backward()
    g_once = grads(model)
    model.zero_grad()
    loss_twice = db_loss(twice, log_r)
    loss_twice.backward()
    assert loss_once.item() == pytest.approx(loss_twice.item(), rel=1e-5)
    for a, b in zip(g_once, grads(model), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("ot", ["reachable", "literal", "off"])
def test_recorded_ot_loss_equals_a_second_pass(ot: str) -> None:
    env = HyperGrid(ndim=2, side=4)
    torch.manual_seed(0)
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 1, True)
    outcomes = env.all_states()
    recorded = RecordedFlows(env, OCGFNPolicy(env, model, outcomes).flows)
    traj = rollout(env, recorded, len(outcomes), generator=torch.Generator().manual_seed(0), grad=True)
    cfg = PretrainConfig(ot=ot)
    success = env.same(traj.terminals, outcomes)
    assert success.any() and not success.all()
    losses, gradients = [], []
    for terms in (recorded_terms(env, traj, recorded),
                  transition_terms(env, traj, OCGFNPolicy(env, model, outcomes).flows)):
        model.zero_grad()
        loss = ocgfn_loss(env, terms, traj.terminals, outcomes, cfg)
        loss.backward()
        losses.append(loss.item())
        gradients.append(grads(model))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for a, b in zip(*gradients, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_recorded_terms_need_the_recorder_of_that_rollout() -> None:
    env = HyperGrid(ndim=2, side=4)
    model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 8, 1, False)
    recorded = RecordedFlows(env, gfn_flows(env, model))
    traj = rollout(env, recorded, 8, generator=torch.Generator().manual_seed(0), grad=True)
    rollout(env, recorded, 8, generator=torch.Generator().manual_seed(1), grad=True)  # records on top
    with pytest.raises(ValueError, match="use a fresh RecordedFlows for each rollout"):
        recorded_terms(env, traj, recorded)
    with pytest.raises(ValueError, match="0 recorded steps"):
        recorded_terms(env, traj, RecordedFlows(env, gfn_flows(env, model)))
    inference = RecordedFlows(env, gfn_flows(env, model))
    traj = rollout(env, inference, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="recorded in inference mode; roll out with grad=True"):
        recorded_terms(env, traj, inference)
