"""Pre-training: a short Pretrainer run, the success rate of hand-made samplers, and the OC-GFN loss."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline_lib.config import ConfigError, _build
from pipeline_lib.core.losses import OT_MODES
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet
from pipeline_lib.core.rollout import Trajectories, rollout
from pipeline_lib.core.transitions import transition_terms
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.ocgfn.pretrain import OCGFNPolicy, PretrainConfig, Pretrainer, ocgfn_loss, success_rate

CPU = torch.device("cpu")
SMALL = dict(steps=30, batch_size=16, hidden=32, layers=2, rnd_hidden=32, rnd_dim=16, eval_every=10,
             checkpoint_every=10)


def oc_loss(env, model, traj: Trajectories, outcomes: torch.Tensor, cfg: PretrainConfig) -> torch.Tensor:
    """The OT loss of ``model`` (conditioned on ``outcomes``) on given trajectories."""
    terms = transition_terms(env, traj, OCGFNPolicy(env, model, outcomes).flows)
    return ocgfn_loss(env, terms, traj.terminals, outcomes, cfg)


def decode(env: HyperGrid, feats: torch.Tensor) -> torch.Tensor:
    """Invert env.featurize: one-hot blocks back to coordinates."""
    return feats.view(len(feats), env.ndim, env.side).argmax(-1)


class PerfectStub:
    """A hand-made OC-GFN: increments the first coordinate still below y, stops exactly at y; F = 1 on its path."""

    def __init__(self, env: HyperGrid) -> None:
        self.env = env

    def __call__(self, state_feats, outcome_feats, initial):
        s, y = decode(self.env, state_feats), decode(self.env, outcome_feats)
        logits = torch.full((len(s), self.env.n_actions), -50.0)
        below = s < y
        first = below.float().argmax(-1)
        has_move = below.any(-1)
        logits[has_move, first[has_move]] = 0.0
        logits[~has_move, self.env.stop] = 0.0
        return torch.zeros(len(s)), logits, None


class AlwaysStopStub:
    """Stops at s0 whatever the outcome: succeeds only for y = s0."""

    def __init__(self, env: HyperGrid) -> None:
        self.env = env

    def __call__(self, state_feats, outcome_feats, initial):
        logits = torch.full((len(state_feats), self.env.n_actions), -50.0)
        logits[:, self.env.stop] = 0.0
        return torch.zeros(len(state_feats)), logits, None


class UniformStub:
    """log F = 0 and uniform P_F over the valid actions, for every state and outcome."""

    def __init__(self, env: HyperGrid) -> None:
        self.env = env

    def __call__(self, state_feats, outcome_feats, initial):
        return torch.zeros(len(state_feats)), torch.zeros(len(state_feats), self.env.n_actions), None


def test_pretrainer_short_run() -> None:
    env = HyperGrid(ndim=2, side=4)
    trainer = Pretrainer(env, PretrainConfig(**SMALL), seed=0, device=CPU)
    df = trainer.run(None)
    assert isinstance(df, pd.DataFrame)
    assert df["step"].tolist() == [0, 1, 2, 4, 8, 10, 20, 30]  # powers of two, then every 10
    for col in ("success_greedy", "success_sample"):
        assert df[col].between(0, 1).all(), col
        # 16 evaluation outcomes: every rate is a multiple of 1/16
        assert ((df[col] * 16 - (df[col] * 16).round()).abs() < 1e-9).all(), col
    assert df["trajectories"].tolist() == [32 * s for s in df["step"]]
    assert df["explorer_coverage"].between(0, 1).all() and df["explorer_coverage"].iloc[-1] > 0
    later = df.iloc[1:]
    for col in ("oc_loss", "explorer_loss", "rnd_loss", "neg_success"):
        assert later[col].map(math.isfinite).all(), col
    assert later["neg_success"].between(0, 1).all()
    assert len(trainer.eval_outcomes) == 16  # the whole (small) outcome space


def test_explorer_coverage_is_over_outcomes_not_states() -> None:
    """On sequences most states are not outcomes (21 states, 16 two-letter objects): the coverage counts the
    objects the explorer produced among the outcomes, so it can reach 1."""
    from pipeline_lib.domains.sequence.env import Sequence

    env = Sequence("dna", 2)
    trainer = Pretrainer(env, PretrainConfig(**SMALL), seed=0, device=CPU)
    df = trainer.run(None)
    terminal = env.index(env.terminal_states())
    assert trainer.seen.sum() == trainer.seen[terminal].sum()  # only outcomes are ever marked
    assert df["explorer_coverage"].iloc[-1] == trainer.seen.sum().item() / 16
    assert df["explorer_coverage"].iloc[-1] == 1.0  # 30 steps of 16 explorer trajectories find all 16 objects


def test_pretrainer_resume_is_exact(tmp_path: Path) -> None:
    env = HyperGrid(ndim=2, side=3)
    cfg = PretrainConfig(**{**SMALL, "steps": 4, "eval_every": 2, "checkpoint_every": 2})
    full = Pretrainer(env, cfg, seed=1, device=CPU).run(tmp_path / "a.ckpt")
    part = Pretrainer(env, cfg, seed=1, device=CPU)
    part.steps = 2
    part.run(tmp_path / "b.ckpt")
    again = Pretrainer(env, cfg, seed=1, device=CPU)
    resumed = again.run(tmp_path / "b.ckpt")
    assert (resumed["seconds"] >= 0).all()  # wall-clock: out of the comparison
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), full.drop(columns="seconds"))
    assert len(again.band_table()) == len(resumed) * len(again.bands)  # band rows resume with the metrics


def test_success_rate_of_hand_made_samplers() -> None:
    env = HyperGrid(ndim=2, side=4)
    outcomes = env.all_states()
    gen = torch.Generator().manual_seed(0)
    assert success_rate(env, PerfectStub(env), outcomes, True, None) == 1.0
    assert success_rate(env, PerfectStub(env), outcomes, False, gen) == 1.0
    assert success_rate(env, AlwaysStopStub(env), outcomes, True, None) == 1 / 16
    assert success_rate(env, AlwaysStopStub(env), outcomes, False, gen) == 1 / 16
    # chunking does not change the count
    assert success_rate(env, AlwaysStopStub(env), outcomes, True, None, chunk=3) == 1 / 16
    # only the far corner y = (3, 3): the always-stop sampler never gets there
    assert success_rate(env, AlwaysStopStub(env), outcomes[-1:], True, None) == 0.0


@pytest.mark.parametrize("ot", OT_MODES)
def test_ocgfn_loss_zero_for_perfect_stub_1d(ot: str) -> None:
    # 1-D: one parent per state, so P_B = 1 and the perfect stub satisfies DB with F = 1 on every path
    env = HyperGrid(ndim=1, side=5)
    outcomes = env.all_states()
    traj = rollout(env, lambda s, rows, mask: torch.log_softmax(
        PerfectStub(env)(env.featurize(s), env.featurize(outcomes[rows]), None)[1]
        .masked_fill(~mask, -1e9), -1), len(outcomes), greedy=True)
    assert torch.equal(traj.terminals, outcomes)
    cfg = PretrainConfig(ot=ot)
    loss = oc_loss(env, PerfectStub(env), traj, outcomes, cfg)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def hand_trajectories() -> tuple[Trajectories, torch.Tensor]:
    """1-D grid of side 3 (stop = action 1). A: y = 1, stops at s0 (fails). B: y = 0, s0 -> s1, stops (fails,
    the move is the culprit). C: y = 2, s0 -> s1 -> s2, stops (succeeds)."""
    states = torch.tensor([[0, 0, 0], [0, 1, 1], [0, 1, 2], [0, 1, 2]]).unsqueeze(-1)  # [T+1=4, B=3, 1]
    actions = torch.tensor([[1, 0, 0], [-1, 1, 0], [-1, -1, 1]])
    valid = actions >= 0
    traj = Trajectories(states, actions, valid, torch.tensor([[0], [1], [2]]))
    return traj, torch.tensor([[1], [0], [2]])


def test_ocgfn_loss_hand_values_per_mode() -> None:
    # Uniform stub: log F = 0, P_F = 1/2 wherever a move is possible (s0, s1), 1 at s2; P_B = 1 (1-D).
    # Transitions (t-major): A0 stop@s0, B0 move s0->s1, C0 move, B1 stop@s1, C1 move s1->s2, C2 stop@s2.
    # With log2 = log 2 and log_eps = -10:
    #   A0: failed stop, y=1 reachable from s0 -> culprit in 'reachable'; residual -l + 10 in every mode
    #   B0: y=0 unreachable from s1 -> culprit: reachable -l + 10; off: -l; literal: -l + 10
    #   B1: from s1, y=0 already unreachable: dropped in 'reachable'; off and literal: -l + 10
    #   C0, C1: successful moves -l; C2: successful stop 0
    env = HyperGrid(ndim=1, side=3)
    traj, outcomes = hand_trajectories()
    log2 = math.log(2)
    fail, move = (10 - log2) ** 2, log2**2
    expected = {
        "reachable": (2 * fail + 2 * move + 0) / 5,
        "off": (fail + move + fail + 2 * move + 0) / 6,
        "literal": (3 * fail + 2 * move + 0) / 6,
    }
    for ot, value in expected.items():
        cfg = PretrainConfig(ot=ot, log_eps_fail=-10.0)
        loss = oc_loss(env, UniformStub(env), traj, outcomes, cfg)
        assert loss.item() == pytest.approx(value, rel=1e-6), ot


def test_ocgfn_loss_log_eps_is_used() -> None:
    env = HyperGrid(ndim=1, side=3)
    traj, outcomes = hand_trajectories()
    log2 = math.log(2)
    loss = oc_loss(env, UniformStub(env), traj, outcomes, PretrainConfig(ot="reachable", log_eps_fail=-3.0))
    assert loss.item() == pytest.approx((2 * (3 - log2) ** 2 + 2 * log2**2) / 5, rel=1e-6)


@pytest.mark.parametrize("ot", OT_MODES)
def test_ocgfn_loss_finite_with_network(ot: str) -> None:
    torch.manual_seed(0)
    env = HyperGrid(ndim=2, side=4)
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False)
    model_pb = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, True)
    gen = torch.Generator().manual_seed(0)
    outcomes = env.all_states()
    traj = rollout(env, lambda s, rows, mask: torch.log_softmax(
        torch.zeros(len(s), env.n_actions).masked_fill(~mask, -1e9), -1), len(outcomes),
        generator=gen)
    assert not env.same(traj.terminals, outcomes).all()  # some fail, some succeed (y = s0 always does)
    for net in (model, model_pb):
        loss = oc_loss(env, net, traj, outcomes, PretrainConfig(ot=ot))
        assert math.isfinite(loss.item()) and loss.item() >= 0
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_learning_rate_decays_and_resumes_on_the_same_schedule(tmp_path: Path) -> None:
    env = HyperGrid(ndim=2, side=3)
    cfg = PretrainConfig(**{**SMALL, "steps": 4, "eval_every": 2, "checkpoint_every": 2, "lr_decay": 0.1})
    trainer = Pretrainer(env, cfg, seed=1, device=CPU)
    full = trainer.run(tmp_path / "a.ckpt")
    # The last step (step index 3 of 4) used lr * (0.1 + 0.9 * (1 + cos(3 pi / 4)) / 2).
    expected = cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 3 / 4)))
    assert trainer.opt.param_groups[0]["lr"] == pytest.approx(expected)
    assert trainer.explorer_opt.param_groups[0]["lr"] == cfg.explorer_lr  # the explorer keeps exploring
    part = Pretrainer(env, cfg, seed=1, device=CPU)
    part.steps = 2
    part.run(tmp_path / "b.ckpt")
    again = Pretrainer(env, cfg, seed=1, device=CPU)
    resumed = again.run(tmp_path / "b.ckpt")
    assert (resumed["seconds"] >= 0).all()  # wall-clock: out of the comparison
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), full.drop(columns="seconds"))
    assert len(again.band_table()) == len(resumed) * len(again.bands)  # band rows resume with the metrics
    constant = Pretrainer(env, PretrainConfig(**{**SMALL, "steps": 4}), seed=1, device=CPU).run(None)
    assert not constant["oc_loss"].iloc[-1] == full["oc_loss"].iloc[-1]


def test_lr_decay_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="lr_decay"):
        _build(PretrainConfig, {"lr_decay": 1.5}, "pretrain.settings")


def test_explorer_every_updates_the_explorer_once_per_window_and_resumes_inside_one(tmp_path: Path) -> None:
    """explorer_every = 3: one explorer rollout of 3 batches and one update every 3 steps, each step's positives
    a fresh batch of it; a run stopped inside a window (step 4 of 3-step windows) resumes bit for bit."""
    env = HyperGrid(ndim=2, side=3)
    cfg = PretrainConfig(**{**SMALL, "steps": 6, "eval_every": 2, "checkpoint_every": 2, "explorer_every": 3})
    trainer = Pretrainer(env, cfg, seed=1, device=CPU)
    calls, handed = [], []
    draw, take = trainer.explore_batch, trainer.explored.take
    trainer.explore_batch = lambda n: calls.append(n) or draw(n)
    trainer.explored.take = lambda n: handed.append(take(n)) or handed[-1]
    full = trainer.run(tmp_path / "a.ckpt")
    assert calls == [3 * cfg.batch_size] * 2  # steps 1 and 4
    assert all(batch.n == cfg.batch_size for batch in handed) and len(handed) == 6
    last = torch.cat([batch.terminals for batch in handed[3:]])  # the last window: its rollout, in order, once
    assert torch.equal(last, trainer.explored.batch.terminals)
    part = Pretrainer(env, cfg, seed=1, device=CPU)
    part.steps = 4
    part.run(tmp_path / "b.ckpt")
    assert part.explored.left() == 2 * cfg.batch_size  # stopped inside the second window
    again = Pretrainer(env, cfg, seed=1, device=CPU)
    resumed = again.run(tmp_path / "b.ckpt")
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), full.drop(columns="seconds"))
    one = Pretrainer(env, PretrainConfig(**{**SMALL, "steps": 6}), seed=1, device=CPU).run(None)
    assert not one["oc_loss"].equals(full["oc_loss"])  # the option changes training: it is measured, not free


def test_explorer_every_below_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="explorer_every"):
        Pretrainer(HyperGrid(ndim=2, side=3), PretrainConfig(**{**SMALL, "explorer_every": 0}), seed=0, device=CPU)


@pytest.mark.parametrize("mode", ["append", "prepend_append"])
def test_ocgfn_loss_reads_reachability_at_s_prime_from_the_next_transition(mode: str) -> None:
    """The loss tests reachability once per transition and reads s' from the next one: the same loss as testing
    s and s' separately, on rollouts of an untrained pair-conditioned OC-GFN towards random outcomes."""
    from pipeline_lib.core.losses import masked_mse, outcome_teleportation
    from pipeline_lib.domains.sequence.env import Sequence

    env = Sequence("ACG", 5, min_length=1, mode=mode)
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, False,
                                       "pairs", env.pair_dim)
    gen = torch.Generator().manual_seed(0)
    outcomes = env.random_outcomes(64, gen)
    traj = rollout(env, OCGFNPolicy(env, model, outcomes), 64, 0.3, generator=gen)
    cfg = PretrainConfig(ot="reachable")
    terms = transition_terms(env, traj, OCGFNPolicy(env, model, outcomes).flows)
    y = outcomes[terms.b]
    success = env.same(traj.terminals, outcomes)[terms.b]
    reach_next = torch.where(terms.is_stop, success, env.can_reach(terms.next_state, y))
    assert (~reach_next).any() and reach_next.any()  # both kinds of s' occur
    residual, mask = outcome_teleportation(terms.log_f, terms.log_pf, terms.log_f_next, terms.log_pb, terms.is_stop,
                                           success, env.can_reach(terms.state, y), reach_next, cfg.ot,
                                           cfg.log_eps_fail)
    assert torch.equal(ocgfn_loss(env, terms, traj.terminals, outcomes, cfg), masked_mse(residual, mask))


def test_each_state_and_outcome_pair_of_the_stacked_sets_is_evaluated_once() -> None:
    """Under relabel_own a rollout that reached its goal enters the loss twice with the same outcome, an explorer
    trajectory whose path a rollout took to the same outcome is that rollout again, and s0 opens every trajectory:
    ``transition_terms`` given the outcomes evaluates each distinct (state, outcome) pair once, and each distinct
    state's own part once. The terms, the loss and every gradient are those of a pass over every row."""
    from pipeline_lib.domains.sequence.env import Sequence
    from pipeline_lib.ocgfn.pretrain import loss_sets

    env = Sequence("ACG", 4, min_length=1)
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, False,
                                       "pairs", env.pair_dim)
    gen = torch.Generator().manual_seed(0)
    cfg = PretrainConfig(relabel_own=True, contrastive=True)
    goals = env.random_outcomes(48, gen)
    rollouts = rollout(env, OCGFNPolicy(env, model, goals), 48, 0.5, generator=gen)
    goals[:20] = rollouts.terminals[:20]  # the first 20 reached their goal, as most do once trained
    drawn = rollout(env, OCGFNPolicy(env, model, goals), 48, 0.5, generator=gen)
    # the explorer's first 10 trajectories are the rollouts' paths (another object), its outcomes their goals
    explorer = Trajectories.concat([rollouts.columns(0, 10), drawn.columns(10, 48)])
    sets, trajectories = loss_sets(cfg, goals, rollouts, explorer.terminals, explorer, rollouts.terminals)
    y, batch = torch.cat(sets), Trajectories.concat(trajectories)
    t, b = batch.valid.nonzero(as_tuple=True)
    rows = [(tuple(batch.states[i, j].tolist()), tuple(y[j].tolist())) for i, j in zip(t.tolist(), b.tolist())]
    calls = []

    def counting(states, rows, at=None):
        calls.append((len(states), len(rows)))
        return OCGFNPolicy(env, model, y).flows(states, rows, at)

    results = []
    for outcomes in (None, y):
        model.zero_grad()
        terms = transition_terms(env, batch, counting, outcomes)
        loss = ocgfn_loss(env, terms, batch.terminals, y, cfg, sets=len(sets))
        loss.backward()
        results.append((terms, loss.detach(), [p.grad.clone() for p in model.parameters()]))
    assert calls[0] == (len(rows), len(rows))  # every transition's state, none past a stop
    assert calls[1] == (len({state for state, _ in rows}), len(set(rows))) and len(set(rows)) < 0.6 * len(rows)
    (every, loss_every, grads_every), (once, loss_once, grads_once) = results
    moves = ~every.is_stop  # at a stop, log F(s') is the sink's placeholder, which the losses replace
    for name in ("log_f", "log_pf", "log_pb"):
        assert torch.allclose(getattr(every, name), getattr(once, name), atol=1e-6)
    assert torch.allclose(every.log_f_next[moves], once.log_f_next[moves], atol=1e-6)
    assert torch.allclose(loss_every, loss_once, rtol=1e-6, atol=1e-7)
    for full, shared in zip(grads_every, grads_once):
        assert torch.allclose(full, shared, rtol=1e-5, atol=1e-7)


def test_distinct_rows_are_exact_whatever_the_hash() -> None:
    """Rows of several parts (ints, floats, bools) equal in every part share one group; a NaN, which no hash check
    can confirm, sends it to the exact sort, with the same answer."""
    from pipeline_lib.core.transitions import distinct_rows

    gen = torch.Generator().manual_seed(0)
    ints = torch.randint(0, 3, (300, 2, 2), generator=gen)
    floats = torch.randint(0, 2, (300,), generator=gen).float() / 2
    flags = torch.randint(0, 2, (300, 1), generator=gen).bool()
    for part in (floats, torch.where(floats > 0, floats, torch.nan)):
        inverse, first = distinct_rows(ints, part, flags)
        keys = [(tuple(ints[i].flatten().tolist()), str(part[i].item()), bool(flags[i])) for i in range(300)]
        assert len(first) == len(set(keys)) < 300
        assert all(keys[i] == keys[int(first[inverse[i]])] for i in range(300))
        assert all(int(first[inverse[i]]) <= i for i in range(300))  # the first row of each kind
