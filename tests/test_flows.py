"""One forward pass: the terms replayed from what the model computed while sampling equal a second pass over the
same trajectories, in value and in gradient, for every environment kind, learned or uniform P_B, every block size
of the replayed backward, and a model whose MLPs feed each other (the fine-tuned OC-GFN)."""
from __future__ import annotations

import pytest
import torch

from pipeline_lib.core.nets import GFlowNet, OutcomeConditionedGFlowNet, OutcomeFree, Tape, taped
from pipeline_lib.core.rollout import rollout
from pipeline_lib.core.transitions import db_loss, db_rollout, gfn_flows, gfn_policy, transition_terms
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.sequence.env import Sequence

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
@pytest.mark.parametrize("block", [1, 7, 256])
def test_replayed_terms_equal_a_second_pass(name: str, learn_pb: bool, block: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """``block``: rows joined per block of the replayed backward (1: every call alone; 256: the default)."""
    monkeypatch.setattr(Tape, "rows_per_block", block)
    env = ENVS[name]()
    torch.manual_seed(0)
    model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, learn_pb)
    traj, once = db_rollout(env, model, 40, 0.1, torch.Generator().manual_seed(1))
    # the taped rollout samples exactly what the plain policy samples from the same generator
    plain = rollout(env, gfn_policy(env, model), 40, epsilon=0.1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(traj.actions, plain.actions) and torch.equal(traj.valid, plain.valid)

    twice = transition_terms(env, traj, gfn_flows(env, model))
    for field in ("t", "b", "state", "next_state", "action", "is_stop"):
        assert torch.equal(getattr(once, field), getattr(twice, field)), field
    move = ~once.is_stop
    assert move.any() and once.is_stop.sum() == 40
    for field in ("log_f", "log_pf", "log_pb"):
        assert torch.allclose(getattr(once, field), getattr(twice, field), atol=1e-5), field
    assert torch.allclose(once.log_f_next[move], twice.log_f_next[move], atol=1e-5)
    assert_same_loss_and_gradients(model, once, twice, torch.randn(40))


def assert_same_loss_and_gradients(model: torch.nn.Module, once, twice, log_r: torch.Tensor) -> None:
    model.zero_grad()
    loss_once = db_loss(once, log_r)
    loss_once.backward()
    g_once = grads(model)
    model.zero_grad()
    loss_twice = db_loss(twice, log_r)
    loss_twice.backward()
    assert loss_once.item() == pytest.approx(loss_twice.item(), rel=1e-5)
    assert len(g_once) == len(list(model.parameters()))
    for a, b in zip(g_once, grads(model), strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("pairs", [False, True])
def test_replay_differentiates_through_an_mlp_input(pairs: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fine-tuned OC-GFN (``OutcomeFree``) feeds one MLP's output, joined with learned embeddings, into another:
    the replay carries the gradient into the first MLP and into the embeddings."""
    monkeypatch.setattr(Tape, "rows_per_block", 5)
    env = Sequence("ACGT", 4)
    torch.manual_seed(0)
    pair_dim = env.pair_dim if pairs else 0
    oc = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 2, False,
                                    "pairs" if pairs else "product", pair_dim)
    model = OutcomeFree(oc, torch.randn(16), torch.randn(16) if pairs else None)
    traj, once = db_rollout(env, model, 30, 0.1, torch.Generator().manual_seed(2))
    twice = transition_terms(env, traj, gfn_flows(env, model))
    assert torch.allclose(once.log_f, twice.log_f, atol=1e-5)
    assert_same_loss_and_gradients(model, once, twice, torch.randn(30))


def test_replay_needs_the_rows_it_recorded_and_an_mlp_it_can_differentiate() -> None:
    env = HyperGrid(ndim=2, side=4)
    model = GFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 8, 1, False)
    with taped(model) as tape:
        traj = rollout(env, gfn_policy(env, model), 8, generator=torch.Generator().manual_seed(0))
        tape.replaying = True
        with pytest.raises(ValueError, match=r"taped: 1 rows replayed for \d+ recorded"):
            model(env.featurize(traj.states[0, :1]))
        with pytest.raises(ValueError, match="replaying an MLP that recorded nothing"):
            model(env.featurize(traj.states[0]))  # the failed replay took the records
    assert model.net.tape is None  # the context leaves no tape behind
    model.net.append(torch.nn.Tanh())
    with pytest.raises(ValueError, match="taped: an MLP of Linear layers.*got Tanh"):
        with taped(model):
            pass
