"""The batched hypergrid: masks, transitions, reachability, indexing and the domain registry."""
from __future__ import annotations

import itertools

import pytest
import torch

from pipeline_lib.core.env import CAPABILITIES, Environment, missing
from pipeline_lib.domains import DOMAINS, make_env
from pipeline_lib.domains.hypergrid.env import HyperGrid


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_sizes_side4_ndim2() -> None:
    env = HyperGrid(ndim=2, side=4)
    assert env.n_actions == 3 and env.stop == 2
    assert env.n_backward_actions == 2
    assert env.n_states == 16
    assert env.max_length == 7  # 3 + 3 moves, then stop
    assert env.feature_dim == 8
    assert isinstance(env, Environment)
    have = env.capabilities()
    assert set(have) == set(CAPABILITIES)
    assert have["enumerable"] is None and have["local_moves"] is None and have["neighbours"] is None
    assert "DAG" in have["tree"] and missing(env, ["enumerable", "tree"]).startswith("needs the 'tree' capability")


def test_forward_mask_at_boundary() -> None:
    env = HyperGrid(ndim=2, side=4)
    mask = env.forward_mask(t([[0, 0], [3, 1], [1, 3], [3, 3], [2, 2]]))
    expected = torch.tensor([
        [True, True, True],
        [False, True, True],  # coordinate 0 is at side - 1: cannot increment it
        [True, False, True],
        [False, False, True],  # the far corner can only stop
        [True, True, True],
    ])
    assert torch.equal(mask, expected)


def test_stop_always_allowed() -> None:
    env = HyperGrid(ndim=3, side=3)
    assert env.forward_mask(env.all_states())[:, env.stop].all()


def test_backward_mask() -> None:
    env = HyperGrid(ndim=2, side=4)
    mask = env.backward_mask(t([[0, 0], [2, 0], [0, 1], [3, 3]]))
    assert torch.equal(mask, torch.tensor([[False, False], [True, False], [False, True], [True, True]]))
    s0 = env.initial_states(5)
    assert s0.shape == (5, 2) and (s0 == 0).all()
    assert not env.backward_mask(s0).any()
    assert env.is_initial(t([[0, 0], [0, 1]])).tolist() == [True, False]


def test_step_hand_examples() -> None:
    env = HyperGrid(ndim=2, side=4)
    states = t([[0, 0], [1, 2], [3, 1], [2, 2]])
    actions = t([0, 1, 1, 2])  # last is stop: row unchanged
    assert torch.equal(env.step(states, actions), t([[1, 0], [1, 3], [3, 2], [2, 2]]))
    assert torch.equal(states, t([[0, 0], [1, 2], [3, 1], [2, 2]]))  # input not mutated


@pytest.mark.parametrize("ndim,side", [(1, 4), (2, 4), (3, 3)])
def test_step_parent_reversibility(ndim: int, side: int) -> None:
    env = HyperGrid(ndim=ndim, side=side)
    states = env.all_states()
    mask = env.forward_mask(states)
    n_moves = 0
    for a in range(env.n_actions - 1):
        rows = mask[:, a].nonzero(as_tuple=True)[0]
        src = states[rows]
        act = torch.full((len(rows),), a, dtype=torch.long)
        child = env.step(src, act)
        assert ((child >= 0) & (child < side)).all()
        assert torch.equal(env.level(child), env.level(src) + 1)
        back = env.backward_action(src, act)
        assert env.backward_mask(child)[torch.arange(len(rows)), back].all()
        assert torch.equal(env.parent(child, back), src)
        n_moves += len(rows)
    # every cell with coordinate i > 0 has exactly one parent along i, so #edges = #(state, i) with s_i > 0
    assert n_moves == int(env.backward_mask(states).sum())
    # and every parent of every state steps back to it
    for b in range(env.n_backward_actions):
        rows = env.backward_mask(states)[:, b].nonzero(as_tuple=True)[0]
        back = torch.full((len(rows),), b, dtype=torch.long)
        par = env.parent(states[rows], back)
        assert env.forward_mask(par)[:, b].all()
        assert torch.equal(env.step(par, back), states[rows])


def test_can_reach_hand_examples() -> None:
    env = HyperGrid(ndim=2, side=4)
    s = t([[0, 0], [1, 2], [1, 2], [1, 2], [3, 3], [2, 0]])
    y = t([[3, 3], [1, 2], [2, 3], [0, 3], [3, 2], [1, 3]])
    assert env.can_reach(s, y).tolist() == [True, True, True, False, False, False]
    assert env.same(s, y).tolist() == [False, True, False, False, False, False]


def test_index_is_bijection_in_all_states_order() -> None:
    env = HyperGrid(ndim=3, side=3)
    states = env.all_states()
    assert states.shape == (27, 3) and states.dtype == torch.long
    assert torch.equal(env.index(states), torch.arange(27))
    # row-major order: the first coordinate varies slowest
    assert [tuple(r) for r in states.tolist()] == list(itertools.product(range(3), repeat=3))
    assert env.index(t([[2, 1, 0]])).item() == 2 * 9 + 1 * 3 + 0
    assert torch.equal(env.level(t([[2, 1, 0], [0, 0, 0]])), t([3, 0]))


def test_index_1d() -> None:
    env = HyperGrid(ndim=1, side=4)
    states = env.all_states()
    assert states.shape == (4, 1)
    assert torch.equal(env.index(states), torch.arange(4))


def test_featurize_one_hot() -> None:
    env = HyperGrid(ndim=2, side=4)
    feats = env.featurize(t([[0, 0], [3, 1]]))
    assert feats.shape == (2, 8) and feats.dtype == torch.float32
    assert torch.equal(feats[1], torch.tensor([0, 0, 0, 1, 0, 1, 0, 0], dtype=torch.float32))
    assert torch.equal(feats.sum(1), torch.full((2,), 2.0))
    all_feats = env.featurize(env.all_states())
    assert all_feats.shape == (16, env.feature_dim)
    assert len(torch.unique(all_feats, dim=0)) == 16  # distinct states, distinct features


def test_make_env() -> None:
    env = make_env("hypergrid", {"ndim": 2, "side": 3})
    assert isinstance(env, HyperGrid) and env.n_states == 9
    assert "hypergrid" in DOMAINS


def test_make_env_unknown_domain() -> None:
    with pytest.raises(ValueError, match=r"domain: unknown domain 'gridworld'"):
        make_env("gridworld", {"ndim": 2, "side": 3})


@pytest.mark.parametrize(("params", "message"), [
    ({"ndim": 2, "sides": 3}, r"params\.sides: unknown parameter of domain 'hypergrid'"),
    ({"ndim": 2}, r"params: domain 'hypergrid' needs \['side'\]"),
    ({"ndim": 2, "side": 3, "height": 1}, r"params\.height: unknown parameter"),
    ({"ndim": 2, "side": "six"}, r"params\.side: expected int, got 'six'"),
    ({"ndim": 2.5, "side": 6}, r"params\.ndim: expected int, got 2\.5"),
])
def test_make_env_bad_params_name_the_key_and_type(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_env("hypergrid", params)


@pytest.mark.parametrize("params", [{"ndim": 0, "side": 3}, {"ndim": 2, "side": 1}])
def test_hypergrid_bad_param_values(params: dict) -> None:
    with pytest.raises(ValueError, match="ndim >= 1 and side >= 2"):
        make_env("hypergrid", params)


def test_make_env_bad_param_value_names_the_domain() -> None:
    with pytest.raises(ValueError, match=r"params of domain 'hypergrid'"):
        make_env("hypergrid", {"ndim": 2, "side": 1})


def test_local_moves_are_unit_steps_that_stay_on_the_grid() -> None:
    env = HyperGrid(ndim=2, side=3)
    x = t([[0, 0]] * 200 + [[2, 2]] * 200)
    new, log_q, moved = env.propose(x, torch.Generator().manual_seed(0))
    assert (log_q == 0).all()  # symmetric proposal
    step = (new - x).abs().sum(-1)
    assert ((step == 1) == moved).all() and ((new >= 0) & (new < 3)).all()
    assert moved[:200].float().mean().item() == pytest.approx(0.5, abs=0.1)  # half the steps leave the corner


def test_neighbours_and_object_description() -> None:
    env = HyperGrid(ndim=2, side=3)
    near, valid = env.neighbours(t([[0, 1]]))
    assert sorted(map(tuple, near[0][valid[0]].tolist())) == [(0, 0), (0, 2), (1, 1)]
    x = t([[0, 0], [2, 1], [0, 0]])
    assert env.object_keys(x)[0] == env.object_keys(x)[2] != env.object_keys(x)[1]
    assert env.diversity(x) == pytest.approx((3 + 3 + 0) * 2 / 6)
    table = env.describe(x)
    assert table["outcome"].tolist() == [0, 7, 0]
    import pandas as pd
    assert torch.equal(env.parse(pd.DataFrame(table)), x)


class _NoDevice(HyperGrid):
    def __init__(self, ndim: int, side: int) -> None:
        super().__init__(ndim, side)


class _SilentOnCompletions(HyperGrid):
    def capabilities(self) -> dict:
        return {k: v for k, v in super().capabilities().items() if k != "completions"}


class _ListedBackwards(HyperGrid):
    def all_states(self) -> torch.Tensor:
        return super().all_states().flip(0)


class _IndexWithGaps(HyperGrid):
    def index(self, states: torch.Tensor) -> torch.Tensor:
        return 2 * super().index(states)


def _registered(monkeypatch, cls: type) -> str:
    monkeypatch.setitem(DOMAINS, "mine", f"{__name__}:{cls.__name__}")
    return "mine"


def test_a_new_domain_s_code_errors_name_the_class_and_what_it_must_do(monkeypatch) -> None:
    """What a domain written by following the README gets wrong is named as a code error, not a config one."""
    with pytest.raises(ValueError, match=r"_NoDevice.__init__ takes no 'device' keyword"):
        make_env(_registered(monkeypatch, _NoDevice), {"ndim": 2, "side": 3})
    with pytest.raises(ValueError, match=r"capabilities\(\) must answer for every name .* lacks \['completions'\]"):
        make_env(_registered(monkeypatch, _SilentOnCompletions), {"ndim": 2, "side": 3})


def test_states_listed_out_of_index_order_are_refused_before_any_table() -> None:
    from pipeline_lib.core.exact import StateGraph

    with pytest.raises(ValueError, match=r"_ListedBackwards: index\(all_states\(\)\) must be 0, 1, \.\.\."):
        StateGraph.build(_ListedBackwards(2, 3))
    assert StateGraph.build(HyperGrid(2, 3)).states.shape == (9, 2)
    from pipeline_lib.tasks.task import Task

    with pytest.raises(ValueError, match=r"_IndexWithGaps: index\(all_states\(\)\) must be 0, 1, \.\.\."):
        Task(_IndexWithGaps(2, 3), {"name": "c", "reward": "corner", "modes": {"kind": "threshold", "threshold": 1}}
             ).target
