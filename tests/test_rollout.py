"""Batched rollouts: trajectory structure, the sampled distribution, epsilon mixing and greedy choice."""
from __future__ import annotations

import pytest
import torch

from pipeline_lib.core.nets import masked_log_softmax, uniform_log_pb
from pipeline_lib.core.rollout import rollout, sample_actions
from pipeline_lib.domains.hypergrid.env import HyperGrid


def uniform_policy(env):
    return lambda states, rows, mask: masked_log_softmax(torch.zeros(len(states), env.n_actions), mask)


def test_rollout_structure() -> None:
    env = HyperGrid(ndim=2, side=4)
    gen = torch.Generator().manual_seed(0)
    traj = rollout(env, uniform_policy(env), 50, generator=gen)
    n_t = traj.actions.shape[0]
    assert traj.states.shape == (n_t + 1, 50, 2) and traj.valid.shape == (n_t, 50) and traj.n == 50
    assert n_t <= env.max_length
    assert traj.valid[0].all()
    # valid is a prefix per trajectory, ending with exactly one stop
    lengths = traj.valid.sum(0)
    assert torch.equal(traj.valid, torch.arange(n_t)[:, None] < lengths[None, :])
    last = traj.actions[lengths - 1, torch.arange(50)]
    assert (last == env.stop).all()
    assert ((traj.actions == env.stop) & traj.valid).sum() == 50
    assert (traj.actions[~traj.valid] == -1).all()
    # every valid transition is a valid action and states follow env.step
    t, b, s, a = traj.transitions()
    assert env.forward_mask(s)[torch.arange(len(a)), a].all()
    assert torch.equal(traj.states[t + 1, b], env.step(s, a))
    assert torch.equal(traj.terminals, traj.states[-1])
    assert torch.equal(env.level(traj.terminals), lengths - 1)
    # after its stop a trajectory's state stays the one it stopped in, to the end of the padded table
    after = torch.arange(n_t + 1)[:, None] >= lengths[None, :]
    assert torch.equal(traj.states[after], traj.terminals[None].expand_as(traj.states)[after])
    assert (lengths < n_t).any()  # some trajectory stopped early, so the padding was exercised


def test_rollout_uniform_1d_distribution() -> None:
    env = HyperGrid(ndim=1, side=4)
    gen = torch.Generator().manual_seed(0)
    traj = rollout(env, uniform_policy(env), 8000, generator=gen)
    freq = torch.bincount(traj.terminals[:, 0], minlength=4).float() / 8000
    assert torch.allclose(freq, torch.tensor([0.5, 0.25, 0.125, 0.125]), atol=0.02)


def test_rollout_policy_sees_running_rows() -> None:
    env = HyperGrid(ndim=1, side=5)
    targets = torch.tensor([0, 3, 1, 4])

    def policy(states, rows, mask):  # move until the row's own target
        assert torch.equal(mask, env.forward_mask(states))  # the loop's mask of these states
        logits = torch.full((len(states), 2), -1e9)
        go = states[:, 0] < targets[rows]
        logits[go, 0] = 0.0
        logits[~go, 1] = 0.0
        return masked_log_softmax(logits, mask)

    traj = rollout(env, policy, 4, greedy=True)
    assert traj.terminals[:, 0].tolist() == [0, 3, 1, 4]


def test_sample_actions_epsilon_and_greedy() -> None:
    mask = torch.tensor([[True, False, True]]).expand(4000, 3)
    always_stop = torch.log(torch.tensor([[1e-30, 1e-30, 1.0]])).expand(4000, 3)
    gen = torch.Generator().manual_seed(0)
    only = sample_actions(always_stop, mask, 0.0, False, gen)
    assert (only == 2).all()
    mixed = sample_actions(always_stop, mask, 1.0, False, gen)  # pure uniform over the valid actions
    assert not (mixed == 1).any()
    assert abs((mixed == 0).float().mean().item() - 0.5) < 0.04
    half = sample_actions(always_stop, mask, 0.5, False, gen)  # P(action 0) = 0.5 * 1/2
    assert abs((half == 0).float().mean().item() - 0.25) < 0.04
    greedy = sample_actions(torch.log(torch.tensor([[0.2, 0.5, 0.3]])), torch.ones(1, 3, dtype=torch.bool), 0.0,
                            True, None)
    assert greedy.tolist() == [1]  # greedy takes the policy's argmax
    # ... among the valid actions, even when a broken policy puts its mass elsewhere
    assert sample_actions(torch.log(torch.tensor([[0.2, 0.5, 0.3]])), mask[:1], 0.0, True, None).tolist() == [2]


def test_masked_log_softmax_and_uniform_pb() -> None:
    lp = masked_log_softmax(torch.tensor([[1.0, 5.0, 1.0]]), torch.tensor([[True, False, True]]))
    assert torch.allclose(lp.exp(), torch.tensor([[0.5, 0.0, 0.5]]))
    pb = uniform_log_pb(torch.tensor([[True, True, True], [False, True, False], [False, False, False]]))
    assert torch.allclose(pb, torch.tensor([-torch.log(torch.tensor(3.0)).item(), 0.0, 0.0]))


def test_sample_actions_draws_what_multinomial_draws() -> None:
    """The exponential race replaces torch.multinomial for speed; from the same generator it must
    give the same actions, so results do not depend on which of the two ran."""
    log_p = torch.log_softmax(torch.randn(256, 5, generator=torch.Generator().manual_seed(1)), -1)
    mask = torch.rand(256, 5, generator=torch.Generator().manual_seed(2)) > 0.3
    mask[:, -1] = True
    log_p = masked_log_softmax(log_p, mask)
    for epsilon in (0.0, 0.1):
        ours = sample_actions(log_p, mask, epsilon, False, torch.Generator().manual_seed(3))
        probs = log_p.exp()
        if epsilon:
            probs = (1 - epsilon) * probs + epsilon * mask.float() / mask.sum(-1, keepdim=True)
        theirs = torch.multinomial(probs * mask, 1, generator=torch.Generator().manual_seed(3)).squeeze(-1)
        assert torch.equal(ours, theirs)
        assert mask[torch.arange(256), ours].all()


def test_rollout_outputs_are_ordinary_tensors() -> None:
    """Rollouts run in inference mode; what they return must still feed a loss with gradients
    and accept in-place edits."""
    env = HyperGrid(ndim=2, side=4)
    net = torch.nn.Linear(env.feature_dim, 1)
    traj = rollout(env, uniform_policy(env), 8, generator=torch.Generator().manual_seed(0))
    assert not any(x.is_inference() for x in (traj.states, traj.actions, traj.valid, traj.terminals))
    net(env.featurize(traj.terminals)).sum().backward()
    assert net.weight.grad is not None
    traj.states[0] += 0


@pytest.mark.parametrize("greedy", [False, True])
def test_rollout_rejects_a_nan_policy(greedy: bool) -> None:
    env = HyperGrid(ndim=2, side=4)

    def policy(states, rows, mask):  # goes NaN once a trajectory has moved twice
        log_p = uniform_policy(env)(states, rows, mask)
        return torch.where((states.sum(-1) >= 2)[:, None], torch.nan, log_p)

    with pytest.raises(FloatingPointError, match="rollout step 2: the policy gave NaN"):
        rollout(env, policy, 16, greedy=greedy, generator=torch.Generator().manual_seed(0))


def test_rollout_rejects_a_policy_without_mass_on_valid_actions() -> None:
    env = HyperGrid(ndim=1, side=4)

    def policy(states, rows, mask):  # all mass on "increment", which is invalid at the last cell
        log_p = torch.full((len(states), 2), float("-inf"))
        log_p[:, 0] = 0.0
        return log_p

    with pytest.raises(FloatingPointError, match="rollout step 3"):
        rollout(env, policy, 8, generator=torch.Generator().manual_seed(0))
    with pytest.raises(FloatingPointError, match="rollout step 3"):
        rollout(env, policy, 8, greedy=True)
    # epsilon-uniform mixing gives the valid stop action mass: stopping at the last cell, which has
    # probability zero under the policy itself, is then a legitimate draw
    traj = rollout(env, policy, 8, epsilon=0.1, generator=torch.Generator().manual_seed(0))
    assert (traj.terminals[:, 0] == 3).any()


def test_a_nan_table_policy_is_reported_not_walked_off_the_grid() -> None:
    env = HyperGrid(ndim=2, side=3)
    table = masked_log_softmax(torch.zeros(env.n_states, env.n_actions), env.forward_mask(env.all_states()))
    table[env.index(torch.tensor([[2, 0]]))] = torch.nan  # at the edge, where "increment x" is invalid
    for greedy in (False, True):
        with pytest.raises(FloatingPointError, match="the policy gave NaN"):
            for seed in range(20):  # until some trajectory visits (2, 0)
                rollout(env, lambda s, rows, mask: table[env.index(s)], 64, greedy=greedy,
                        generator=torch.Generator().manual_seed(seed))


def test_rollout_rejects_an_environment_whose_max_length_omits_the_stop() -> None:
    env = HyperGrid(ndim=1, side=4)
    env.max_length = 3  # the longest trajectory has 3 moves and a stop

    def walk_right(states, rows, mask):
        log_p = torch.full((len(states), 2), -1e9)
        log_p[:, 0] = 0.0
        return masked_log_softmax(log_p, mask)

    with pytest.raises(ValueError, match="HyperGrid.max_length = 3, but 2 trajectories had not stopped"):
        rollout(env, walk_right, 2, greedy=True)
