"""Outcome-aware conditioning (pair features), goals of every length and hindsight relabelling of the
OC-GFN's own rollouts (method.md 8)."""
from __future__ import annotations

import itertools

import pytest
import torch

from pipeline_lib.core.nets import OutcomeConditionedGFlowNet, OutcomeFree, oc_inputs
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.domains.subset.env import Subset
from pipeline_lib.ocgfn.pretrain import PretrainConfig, Pretrainer, level_bands, outcome_free, pair_dim, success_rate

CPU = torch.device("cpu")


def offsets(s: str, y: str) -> list[int]:
    """Every offset k at which s occurs in y (brute force; the empty string at every k <= len(y) - len(s))."""
    return [k for k in range(len(y) - len(s) + 1) if y[k:k + len(s)] == s]


def all_strings(alphabet: str, max_len: int, min_len: int = 0) -> list[str]:
    return ["".join(t) for n in range(min_len, max_len + 1) for t in itertools.product(alphabet, repeat=n)]


def test_prepend_append_pair_features_identify_every_match_offset() -> None:
    env = Sequence("ACG", 4, min_length=1, mode="prepend_append")
    states, outcomes = all_strings("ACG", 4), all_strings("ACG", 4, 1)
    pairs = [(s, y) for s in states for y in outcomes]
    s_t = env.encode([s for s, _ in pairs])
    y_t = env.encode([y for _, y in pairs])
    feats = env.pair_features(s_t, y_t).view(len(pairs), env.length, -1)
    assert env.pair_dim == feats.shape[1] * feats.shape[2]
    tokens = feats[..., 1:].view(len(pairs), env.length, 2, env.vocab + 1)
    none = env.pad
    for i, (s, y) in enumerate(pairs):
        hits = [k for k in offsets(s, y) if k < env.length]  # s0 sits at offsets 0..L-1 (the features' L)
        assert feats[i, :, 0].nonzero().flatten().tolist() == hits, (s, y)
        for k in hits:
            left = "ACG".index(y[k - 1]) if k > 0 else none
            right = "ACG".index(y[k + len(s)]) if k + len(s) < len(y) else none
            assert tokens[i, k].argmax(-1).tolist() == [left, right], (s, y, k)
        assert tokens[i, [k for k in range(env.length) if k not in hits]].sum() == 0  # zero off the matches
    # the features agree with the reachability test: some offset matches iff y can still be produced
    assert torch.equal(feats[..., 0].any(-1), env.can_reach(s_t, y_t))


@pytest.mark.parametrize("mode", ["prepend_append", "append"])
def test_summary_pair_features_count_the_tokens_beside_every_match(mode: str) -> None:
    """``pairs: summary``: the match bit per offset, y's tokens left / right of the matches counted over them,
    and s = y; against brute force over every (state, outcome) of a tiny space."""
    env = Sequence("AB", 4, min_length=1, mode=mode, pairs="summary")
    prepend = mode == "prepend_append"
    states, outcomes = all_strings("AB", 4), all_strings("AB", 4, 1)
    pairs = [(s, y) for s in states for y in outcomes]
    feats = env.pair_features(env.encode([s for s, _ in pairs]), env.encode([y for _, y in pairs]))
    n_off, side = env.length if prepend else 1, env.vocab + 1
    assert feats.shape == (len(pairs), env.pair_dim) and env.pair_dim == n_off + side * (1 + prepend) + 1
    for i, (s, y) in enumerate(pairs):
        hits = [k for k in offsets(s, y) if k < n_off]
        left, right = torch.zeros(side), torch.zeros(side)
        for k in hits:
            left[env.pad if k == 0 else "AB".index(y[k - 1])] += 1
            right[env.pad if k + len(s) == len(y) else "AB".index(y[k + len(s)])] += 1
        want = torch.cat([torch.tensor([float(k in hits) for k in range(n_off)]),
                          *([left] if prepend else []), right, torch.tensor([float(s == y)])])
        assert torch.equal(feats[i], want), (s, y)
    with pytest.raises(ValueError, match="pairs: expected one of"):
        Sequence("AB", 4, pairs="offset")


def test_append_pair_features_read_y_at_the_cursor() -> None:
    env = Sequence("ACGT", 5, min_length=1)
    y = env.encode(["GATTA", "GATTA", "GATTA", "CA"])
    s = env.encode(["GA", "", "GATTA", "GA"])
    feats = env.pair_features(s, y)
    assert env.pair_dim == feats.shape[1] == 1 + env.vocab + 1
    assert feats[:, 0].tolist() == [1.0, 1.0, 1.0, 0.0]  # prefix of y or not
    nxt = feats[:, 1:].argmax(-1).tolist()
    assert nxt[:3] == ["ACGT".index("T"), "ACGT".index("G"), env.pad]  # at y: the end, i.e. stop
    assert feats[3, 1:].sum() == 0  # not a prefix: no alignment


def test_grid_and_subset_pair_features() -> None:
    grid = HyperGrid(ndim=2, side=4)
    f = grid.pair_features(torch.tensor([[1, 0], [2, 3]]), torch.tensor([[3, 2], [1, 3]])).view(2, 2, 4)
    assert f[0].argmax(-1).tolist() == [2, 2] and f[0].sum() == 2
    assert f[1, 0].sum() == 0 and f[1, 1].argmax() == 0  # passed y on the first coordinate
    sub = Subset(n=4)
    g = sub.pair_features(torch.tensor([[1, 0, 0, 1]]), torch.tensor([[1, 1, 0, 0]]))
    assert g.tolist() == [[0, 1, 0, 0, 0, 0, 0, 1]]


@pytest.mark.parametrize("env", [Sequence("ACG", 4, min_length=1, mode="prepend_append"), HyperGrid(2, 4)],
                         ids=["prepend_append", "grid"])
def test_pair_conditioned_model_runs_everywhere_it_is_read(env) -> None:
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False, "pairs",
                                       pair_dim(env, "pairs"))
    y = env.random_outcomes(8, torch.Generator().manual_seed(0))
    s = env.initial_states(8)
    log_f, logits, _ = model(*oc_inputs(env, model, s, y))
    assert log_f.shape == (8,) and logits.shape == (8, env.n_actions) and (log_f == 0).all()  # F(s0|y) = 1
    free = outcome_free(env, model, 16, torch.Generator().manual_seed(0))
    assert isinstance(free, OutcomeFree) and free.pair is not None
    assert free(env.featurize(s))[1].shape == (8, env.n_actions)
    with pytest.raises(ValueError, match="pair features are given exactly"):
        OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False, "pairs", 0)


def test_pairs_needs_the_environment_method() -> None:
    class Bare:
        pass

    with pytest.raises(ValueError, match="pair_features"):
        pair_dim(Bare(), "pairs")
    assert pair_dim(Bare(), "product") == 0


def test_pair_conditioning_reaches_every_outcome_of_a_tiny_dag() -> None:
    """Prepend-or-append over 2 tokens up to length 3 (14 objects, up to 4 trajectories each): with pair
    features the unmasked OC-GFN reaches every outcome greedily."""
    env = Sequence("AB", 3, min_length=1, mode="prepend_append")
    cfg = PretrainConfig(steps=300, batch_size=32, hidden=64, layers=2, conditioning="pairs", rnd_hidden=32, rnd_dim=16,
                         eval_every=300, checkpoint_every=1000, lr_decay=0.1, random_goals=0.5)
    trainer = Pretrainer(env, cfg, seed=0, device=CPU)
    trainer.run(None)
    outcomes = env.terminal_states()
    assert len(trainer.eval_outcomes) == len(outcomes) == 14
    assert success_rate(env, trainer.model, outcomes, True, None) == 1.0
    # sampled: 0.88 at 300 steps (product conditioning: greedy 0.43, sampled 0.21)
    assert success_rate(env, trainer.model, outcomes.repeat(20, 1), False, torch.Generator().manual_seed(1)) >= 0.8


def test_random_goals_draw_every_length_and_bands_cover_the_levels() -> None:
    env = Sequence("ACGT", 12, min_length=2)  # not enumerable-small: eval outcomes from random_outcomes
    cfg = PretrainConfig(steps=6, batch_size=64, hidden=16, layers=1, rnd_hidden=16, rnd_dim=8, eval_every=3,
                         eval_outcomes=256, random_goals=1.0, relabel_own=True, conditioning="pairs")
    trainer = Pretrainer(env, cfg, seed=0, device=CPU)
    trainer.run(None)
    goals = trainer.goal_levels
    assert goals.sum() == 6 * 64 and (goals[2:13] > 0).all() and goals[:2].sum() == 0
    bands = trainer.band_table()
    assert sorted(bands["step"].unique().tolist()) == [0, 1, 2, 3, 6]
    last = bands[bands["step"] == 6]
    assert last["level_low"].min() == 2 and last["level_high"].max() == 12 and len(last) == 5
    assert abs(last["eval_fraction"].sum() - 1) < 1e-6 and abs(last["goal_fraction"].sum() - 1) < 1e-6
    assert abs(last["explorer_fraction"].sum() - 1) < 1e-6
    assert last["eval_outcomes"].sum() == 256
    with pytest.raises(ValueError, match="random_goals"):
        Pretrainer(env, PretrainConfig(random_goals=1.5), seed=0, device=CPU)


def test_level_bands_are_contiguous_and_cover() -> None:
    for low, high in [(0, 0), (8, 8), (1, 20), (10, 50), (0, 3)]:
        bands = level_bands(high, low)
        assert bands[0][0] == low and bands[-1][1] == high and len(bands) <= 5
        assert all(b[0] == a[1] + 1 for a, b in zip(bands, bands[1:]))


@pytest.mark.parametrize("conditioning", ["concat", "product", "pairs"])
def test_outcome_shared_pass_equals_the_per_row_pass(conditioning: str) -> None:
    """forward(..., rows) and the policy view's cached outcome part (no autograd) give the per-row
    outputs up to float round-off, gradients included."""
    from pipeline_lib.ocgfn.pretrain import OCGFNPolicy

    env = Sequence("ACG", 4, min_length=1, mode="prepend_append")
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 2, True,
                                       conditioning, pair_dim(env, conditioning))
    gen = torch.Generator().manual_seed(0)
    y = env.random_outcomes(6, gen)
    states = env.random_outcomes(40, gen)
    rows = torch.randint(0, 6, (40,), generator=gen)
    per_row = model(*oc_inputs(env, model, states, y[rows]))
    shared = model(*oc_inputs(env, model, states, y, env.featurize(y), rows), rows=rows)
    view = OCGFNPolicy(env, model, y)
    with torch.no_grad():
        frozen = view.flows(states, rows)
        again = view.flows(states[:5], rows[:5])  # the cached part serves every call of the view
    for a, b, c in zip(per_row, shared, frozen):
        assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)
    assert torch.allclose(again[1], per_row[1][:5], atol=1e-6)
    grads = [torch.autograd.grad(out[1].square().sum(), model.trunk[0].weight)[0]
             for out in (model(*oc_inputs(env, model, states, y[rows])), view.flows(states, rows))]
    assert torch.allclose(*grads, atol=1e-5)


@pytest.mark.parametrize("conditioning", ["concat", "product", "pairs"])
def test_state_shared_pass_equals_the_per_row_pass(conditioning: str) -> None:
    """flows(distinct states, rows, at): each state's embedding and share of the first layer computed once and
    read by every row of it give the per-row outputs and gradients up to float round-off (s0 among the states,
    so the fixed log F(s0|y) = 0 follows its rows)."""
    from pipeline_lib.ocgfn.pretrain import OCGFNPolicy

    env = Sequence("ACG", 4, min_length=1, mode="prepend_append")
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 2, True,
                                       conditioning, pair_dim(env, conditioning))
    gen = torch.Generator().manual_seed(1)
    y = env.random_outcomes(6, gen)
    distinct = torch.cat([env.initial_states(1), env.random_outcomes(9, gen)])
    at = torch.randint(0, 10, (40,), generator=gen)
    rows = torch.randint(0, 6, (40,), generator=gen)
    view = OCGFNPolicy(env, model, y)
    per_row, once = view.flows(distinct[at], rows), view.flows(distinct, rows, at)
    for a, b in zip(per_row, once):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
    assert (once[0][at == 0] == 0).all()
    weights = [model.embed_state[0].weight, model.trunk[0].weight]
    grads = [torch.autograd.grad(out[0].sum() + out[1].square().sum() + out[2].square().sum(), weights)
             for out in (view.flows(distinct[at], rows), view.flows(distinct, rows, at))]
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("mode", ["prepend_append", "append"])
def test_completion_paths_are_the_canonical_trajectories(mode: str) -> None:
    """Every trajectory from a state that follows ``completion_mask`` (appends, then prepends, then stop), found
    by brute force, is one way of ``completion_paths``, with the same states, actions and phases."""
    env = Sequence("AB", 3, min_length=1, mode=mode)

    def trajectories(s: torch.Tensor, phase: int) -> list[tuple[tuple, list]]:
        out = []
        for a in env.completion_mask(s[None], torch.tensor([phase]))[0].nonzero()[:, 0].tolist():
            step = (tuple(s.tolist()), a, phase)
            if a == env.stop:
                out.append((tuple(s.tolist()), [step]))
                continue
            child = env.step(s[None], torch.tensor([a]))[0]
            nxt = int(env.completion_phase(torch.tensor([phase]), torch.tensor([a]))[0])
            out += [(y, [step, *path]) for y, path in trajectories(child, nxt)]
        return out

    ys = env.terminal_states()
    for s in env.all_states():
        brute: dict[tuple, list] = {}
        for y, path in trajectories(s, 0):
            brute.setdefault(y, []).append(path)
        r, way, states, actions, phase = env.completion_paths(s[None].expand(len(ys), -1), ys)
        for row, y in enumerate(ys):
            got: dict[int, list] = {}
            for i in (r == row).nonzero()[:, 0].tolist():
                got.setdefault(int(way[i]), []).append((tuple(states[i].tolist()), int(actions[i]), int(phase[i])))
            assert sorted(got.values()) == sorted(brute.get(tuple(y.tolist()), []))
            text, word = env.decode(s[None])[0], env.decode(y[None])[0]
            offsets = range(len(word) if mode == "prepend_append" else 1)
            ways = len(word) if mode == "prepend_append" and not text else sum(
                word[k:k + len(text)] == text for k in offsets if k + len(text) <= len(word))
            assert len(got) == ways  # one way per offset of s in y; from s0, per position of the first token
