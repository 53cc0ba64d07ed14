"""Exact DP over the hypergrid DAG and the exact conversion of a perfect OC-GFN (method.md 3), by hand and
through a Task with the ExactConversion method."""
from __future__ import annotations

import math

import pytest
import torch

from pipeline_lib.core.exact import StateGraph, converted_policy, terminal_distribution, visit_probabilities
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.methods.exact_conversion import ExactConversion, ExactSettings
from pipeline_lib.ocgfn.sources import GoalReaching, TrainedOCGFN
from pipeline_lib.ocgfn.tables import reachability
from pipeline_lib.tasks.task import Task

D = torch.float64


def uniform_log_pf(env: HyperGrid, states: torch.Tensor) -> torch.Tensor:
    """log P_F of the policy uniform over the valid actions, [S, A]; -inf on invalid actions."""
    mask = env.forward_mask(states)
    probs = mask.to(D) / mask.sum(-1, keepdim=True)
    return probs.log()


def random_log_pf(env: HyperGrid, states: torch.Tensor, gen: torch.Generator, batch: tuple = ()) -> torch.Tensor:
    """A random positive policy over the valid actions, [S, *batch, A]."""
    mask = env.forward_mask(states).view(len(states), *([1] * len(batch)), env.n_actions)
    w = torch.rand(len(states), *batch, env.n_actions, generator=gen, dtype=D) + 0.05
    w = w * mask
    return (w / w.sum(-1, keepdim=True)).log()


def succeeding_log_pf(env: HyperGrid, states: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """P_F(.|s,y) [S, Y, A] that reaches every y for sure: it moves only along coordinates with s_i < y_i
    (uniformly, or in proportion to ``weights`` [S, Y, ndim]) and stops iff s == y. Rows with y unreachable
    from s are never visited; they get the uniform policy."""
    s, y = states[:, None, :], states[None, :, :]
    reach = (s <= y).all(-1)  # [S, Y]
    moves = (s < y).to(D)  # [S, Y, ndim]
    if weights is not None:
        moves = moves * weights
    at_y = (s == y).all(-1)
    stop = at_y.to(D)[..., None]
    p = torch.cat([moves, stop], dim=-1)
    p = p / p.sum(-1, keepdim=True).clamp(min=1e-300)
    uniform = uniform_log_pf(env, states).exp()[:, None, :].expand_as(p)
    p = torch.where(reach[..., None], p, uniform)
    return p.log()


def test_terminal_distribution_uniform_1d() -> None:
    env = HyperGrid(ndim=1, side=4)
    graph = StateGraph.build(env)
    p = terminal_distribution(graph, uniform_log_pf(env, graph.states))
    assert torch.allclose(p, torch.tensor([1 / 2, 1 / 4, 1 / 8, 1 / 8], dtype=D), atol=1e-12)
    visits = visit_probabilities(graph, uniform_log_pf(env, graph.states))
    assert torch.allclose(visits, torch.tensor([1, 1 / 2, 1 / 4, 1 / 8], dtype=D), atol=1e-12)


def test_terminal_distribution_uniform_2d_hand_values() -> None:
    # side 2: s0 stops w.p. 1/3; (1,0) and (0,1) are each reached w.p. 1/3 and stop w.p. 1/2;
    # (1,1) is reached w.p. 1/3 * 1/2 * 2 = 1/3 and stops for sure
    env = HyperGrid(ndim=2, side=2)
    graph = StateGraph.build(env)
    p = terminal_distribution(graph, uniform_log_pf(env, graph.states))
    assert torch.allclose(p, torch.tensor([1 / 3, 1 / 6, 1 / 6, 1 / 3], dtype=D), atol=1e-12)


def test_state_graph_side3() -> None:
    env = HyperGrid(ndim=2, side=3)
    graph = StateGraph.build(env)
    assert graph.stop == 2 and graph.states.shape == (9, 2)
    assert graph.child[0].tolist() == [3, 1, -1]  # (0,0) -> (1,0) = 3, (0,1) = 1; stop has no child
    assert graph.child[8].tolist() == [-1, -1, -1]
    assert graph.child[5].tolist() == [8, -1, -1]  # (1,2): only coordinate 0 can grow
    assert [len(src) for src, _, _ in graph.levels] == [2, 4, 4, 2]  # 12 edges by source level 0..3


@pytest.mark.parametrize("ndim,side", [(2, 4), (3, 3)])
def test_terminal_distribution_sums_to_one(ndim: int, side: int) -> None:
    env = HyperGrid(ndim=ndim, side=side)
    graph = StateGraph.build(env)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        p = terminal_distribution(graph, random_log_pf(env, graph.states, gen))
        assert (p >= 0).all()
        assert p.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_visit_probabilities_batched_matches_per_policy() -> None:
    env = HyperGrid(ndim=2, side=4)
    graph = StateGraph.build(env)
    gen = torch.Generator().manual_seed(1)
    log_pf = random_log_pf(env, graph.states, gen, batch=(3, 2))  # [S, 3, 2, A]
    flow = visit_probabilities(graph, log_pf)
    term = terminal_distribution(graph, log_pf)
    assert flow.shape == (16, 3, 2) and term.shape == (16, 3, 2)
    for i in range(3):
        for j in range(2):
            assert torch.allclose(flow[:, i, j], visit_probabilities(graph, log_pf[:, i, j]), atol=1e-14)
            assert torch.allclose(term[:, i, j], terminal_distribution(graph, log_pf[:, i, j]), atol=1e-14)
    assert torch.allclose(term.sum(0), torch.ones(3, 2, dtype=D))


def test_reachability_table() -> None:
    env = HyperGrid(ndim=2, side=3)
    graph = StateGraph.build(env)
    reach = reachability(env, graph)
    assert reach.shape == (9, 9) and reach.dtype == torch.bool
    assert reach[0].all()  # s0 reaches everything
    assert reach[:, 8].all()  # the far corner is reachable from everything
    assert reach[4].tolist() == [False, False, False, False, True, True, False, True, True]  # from (1,1)
    assert int(reach.sum()) == 36  # sum over s of #{y >= s} = (1 + 2 + 3)^2


def test_succeeding_policy_hand_flows() -> None:
    # the helper's policy for y = (2,2) on side 3, checked by hand: F((1,1)|y) = 1/2, F((2,0)|y) = 1/4,
    # F((2,1)|y) = 1/4 + 1/2 * 1/2 = 1/2, F(y|y) = 1, and it ends at y for sure
    env = HyperGrid(ndim=2, side=3)
    graph = StateGraph.build(env)
    log_pf = succeeding_log_pf(env, graph.states)
    y = 8
    flow = visit_probabilities(graph, log_pf[:, y])
    assert flow[4].item() == pytest.approx(0.5) and flow[6].item() == pytest.approx(0.25)
    assert flow[7].item() == pytest.approx(0.5) and flow[8].item() == pytest.approx(1.0)
    term = terminal_distribution(graph, log_pf)  # [S, Y]
    assert torch.allclose(term, torch.eye(9, dtype=D), atol=1e-12)


def test_converted_policy_1d_hand_values() -> None:
    # perfect OC-GFN on a 1-D grid: move right until s = y, stop there, F(s|y) = 1[s <= y].
    # Conversion: P(stop|s) = R(s) / sum_{y >= s} R(y); with R = (1, 2, 3): 1/6, 2/5, 1
    env = HyperGrid(ndim=1, side=3)
    graph = StateGraph.build(env)
    log_pf = succeeding_log_pf(env, graph.states)
    log_f = visit_probabilities(graph, log_pf).log()
    assert torch.equal(log_f.exp(), torch.tensor([[1, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=D))
    log_r = torch.tensor([1.0, 2.0, 3.0], dtype=D).log()
    table = converted_policy(graph, reachability(env, graph), log_r, log_f, log_pf)
    probs = table.exp()
    assert torch.allclose(probs, torch.tensor([[5 / 6, 1 / 6], [3 / 5, 2 / 5], [0, 1]], dtype=D), atol=1e-12)
    assert torch.allclose(terminal_distribution(graph, table), torch.tensor([1, 2, 3], dtype=D) / 6, atol=1e-12)


@pytest.mark.parametrize("side", [3, 4])
def test_converted_policy_of_perfect_ocgfn_samples_r_over_z(side: int) -> None:
    env = HyperGrid(ndim=2, side=side)
    graph = StateGraph.build(env)
    log_pf = succeeding_log_pf(env, graph.states)  # [S, Y, A]
    flow = visit_probabilities(graph, log_pf)  # [S, Y]: F(s|y), 0 where y is unreachable from s
    reach = reachability(env, graph)
    assert torch.equal(flow > 0, reach)
    gen = torch.Generator().manual_seed(side)
    r = torch.rand(env.n_states, generator=gen, dtype=D) * 5 + 0.1
    table = converted_policy(graph, reach, r.log(), flow.log(), log_pf)
    assert table.shape == (env.n_states, env.n_actions)
    assert (table.exp() * ~graph.mask).abs().max() < 1e-300  # invalid actions get no mass
    assert torch.allclose(table.exp().sum(-1), torch.ones(env.n_states, dtype=D))
    p = terminal_distribution(graph, table)
    assert torch.allclose(p, r / r.sum(), atol=1e-5, rtol=0)
    assert torch.allclose(p, r / r.sum(), atol=1e-12, rtol=0)  # it is exact up to round-off


def test_converted_policy_random_succeeding_policy_is_mixture() -> None:
    # an imperfect-looking (random, non-uniform) conditional policy that still always ends at y:
    # with F its own visit probability, the conversion samples sum_y R(y)/Z P(x|y) = R/Z
    env = HyperGrid(ndim=2, side=4)
    graph = StateGraph.build(env)
    gen = torch.Generator().manual_seed(3)
    weights = torch.rand(env.n_states, env.n_states, env.ndim, generator=gen, dtype=D) + 0.01
    log_pf = succeeding_log_pf(env, graph.states, weights)
    flow = visit_probabilities(graph, log_pf)
    r = torch.rand(env.n_states, generator=gen, dtype=D) + 0.1
    table = converted_policy(graph, reachability(env, graph), r.log(), flow.log(), log_pf)
    mixture = (terminal_distribution(graph, log_pf) * (r / r.sum())[None, :]).sum(1)  # sum_y R(y)/Z P(x|y)
    p = terminal_distribution(graph, table)
    assert torch.allclose(mixture, r / r.sum(), atol=1e-12)
    assert torch.allclose(p, mixture, atol=1e-10, rtol=0)


def test_converted_policy_failing_policy_is_masked_not_mixture() -> None:
    # A conditional policy that ignores y (so it often fails) on a 1-D grid, R = (1, 2, 3):
    # P(stop|s0) = 1/4, P(stop|s1) = 1/2; F(s|y) = (1, 3/4, 3/8) for every y. The reachability mask keeps
    # only y >= child for a move and y = s for a stop (method.md 3):
    #   s0: stop ∝ 1 * 1 * 1/4 = 1/4, move ∝ (2 + 3) * 1 * 3/4 = 15/4  -> P(stop|s0) = 1/16
    #   s1: stop ∝ 2 * 3/4 * 1/2 = 3/4, move ∝ 3 * 3/4 * 1/2 = 9/8      -> P(stop|s1) = 2/5
    # so P(x) = (1/16, 15/16 * 2/5, 15/16 * 3/5), which is NOT the mixture sum_y R(y)/Z P(x|y) = (1/4, 3/8, 3/8):
    # the mixture identity needs a conditional policy that never fails (or the unmasked sum).
    env = HyperGrid(ndim=1, side=3)
    graph = StateGraph.build(env)
    single = torch.tensor([[3 / 4, 1 / 4], [1 / 2, 1 / 2], [0.0, 1.0]], dtype=D).log()
    log_pf = single[:, None, :].expand(3, 3, 2)
    flow = visit_probabilities(graph, log_pf)
    assert torch.allclose(flow[:, 0], torch.tensor([1, 3 / 4, 3 / 8], dtype=D))
    log_r = torch.tensor([1.0, 2.0, 3.0], dtype=D).log()
    table = converted_policy(graph, reachability(env, graph), log_r, flow.log(), log_pf)
    expected = torch.tensor([[15 / 16, 1 / 16], [3 / 5, 2 / 5], [0.0, 1.0]], dtype=D)
    assert torch.allclose(table.exp(), expected, atol=1e-12)
    p = terminal_distribution(graph, table)
    assert torch.allclose(p, torch.tensor([1 / 16, 3 / 8, 9 / 16], dtype=D), atol=1e-12)
    mixture = (terminal_distribution(graph, log_pf) * (log_r.exp() / 6)[None, :]).sum(1)
    assert torch.allclose(mixture, torch.tensor([1 / 4, 3 / 8, 3 / 8], dtype=D), atol=1e-12)


def test_converted_policy_chunking_is_invisible() -> None:
    env = HyperGrid(ndim=2, side=4)
    graph = StateGraph.build(env)
    gen = torch.Generator().manual_seed(5)
    log_pf = random_log_pf(env, graph.states, gen, batch=(env.n_states,))
    flow = visit_probabilities(graph, log_pf).log()
    log_r = torch.rand(env.n_states, generator=gen, dtype=D).log()
    reach = reachability(env, graph)
    full = converted_policy(graph, reach, log_r, flow, log_pf)
    chunked = converted_policy(graph, reach, log_r, flow, log_pf, chunk=5)
    assert torch.allclose(full, chunked, atol=1e-12)
    assert math.isfinite(terminal_distribution(graph, full).sum().item())


class TableOCGFN:
    """An OC-GFN read from tables: P_F(.|s,y) = ``log_pf`` [S, Y, A] and log F(s|y) = ``log_f`` [S, Y] of a
    hypergrid, looked up from the one-hot state and outcome features the conversion feeds it."""

    def __init__(self, env: HyperGrid, log_pf: torch.Tensor, log_f: torch.Tensor) -> None:
        self.env, self.log_pf, self.log_f = env, log_pf, log_f

    def _index(self, feats: torch.Tensor) -> torch.Tensor:
        return self.env.index(feats.view(len(feats), self.env.ndim, self.env.side).argmax(-1))

    def __call__(self, state_feats, outcome_feats, initial):
        s, y = self._index(state_feats), self._index(outcome_feats)
        return self.log_f[s, y].float().clamp(min=-80), self.log_pf[s, y].float().clamp(min=-80), None


@pytest.mark.parametrize("flow", ["policy", "learned"])
@pytest.mark.parametrize("weighted", [False, True])
def test_exact_conversion_through_a_task_samples_r_over_z(flow: str, weighted: bool) -> None:
    """ExactConversion on a tiny grid (the dense strategy: a grid is not a tree), given a perfect OC-GFN whose
    flow head is exact: its table's terminal distribution is the task's R/Z, with one reward call per cell."""
    env = HyperGrid(ndim=2, side=3)
    task = Task(env, {"reward": "peaks", "params": {"width": 0.3}}, "resources")
    graph = task.graph
    gen = torch.Generator().manual_seed(7)
    weights = torch.rand(env.n_states, env.n_states, env.ndim, generator=gen, dtype=D) + 0.01 if weighted else None
    log_pf = succeeding_log_pf(env, graph.states, weights)
    log_f = visit_probabilities(graph, log_pf).clamp(min=1e-300).log()
    method = ExactConversion(task, ExactSettings(flow=flow), seed=0, device=torch.device("cpu"),
                             pretrained=TrainedOCGFN(env, TableOCGFN(env, log_pf, log_f)))
    df = method.run(None)
    assert df["step"].tolist() == [0] and df["reward_calls"].tolist() == [9] == df["unique_reward_calls"].tolist()
    table = method.table()
    assert table.shape == (9, 3)
    p = terminal_distribution(graph, table.double())
    assert torch.allclose(p, task.target.double(), atol=1e-5, rtol=0)
    assert not torch.allclose(task.target, torch.full((9,), 1 / 9), atol=1e-2)  # the reward is not flat
    assert df["l1"].iloc[0] < 1e-5 and df["kl"].iloc[0] < 1e-5
    reference = converted_policy(graph, reachability(env, graph), task.landscape.double().log(), log_f, log_pf)
    assert torch.allclose(table.double().exp(), reference.exp(), atol=1e-5)


@pytest.mark.parametrize("flow", ["policy", "learned"])
def test_sparse_conversion_on_prepend_append_equals_the_dense_sum(flow: str) -> None:
    """On a prepend-or-append space (a DAG listing each outcome's substrings as its ancestors) the sparse
    conversion equals the dense one for an arbitrary pair-conditioned network, and with the no-pre-training
    control it samples R/Z exactly."""
    from types import SimpleNamespace

    from pipeline_lib.core.nets import OutcomeConditionedGFlowNet
    from pipeline_lib.domains.sequence.env import Sequence
    from pipeline_lib.methods.exact_conversion import dense_conversion, sparse_conversion
    from pipeline_lib.ocgfn.pretrain import pair_dim

    torch.manual_seed(0)
    env = Sequence("ACG", 4, min_length=2, mode="prepend_append")
    graph = StateGraph.build(env)
    log_r = torch.randn(len(env.terminal_states()), generator=torch.Generator().manual_seed(3))
    net = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, False, "pairs",
                                     pair_dim(env, "pairs"))
    sources = [TrainedOCGFN(env, net)] + ([GoalReaching(env)] if flow == "policy" else [])
    for source in sources:
        sparse = sparse_conversion(env, source, log_r, flow, chunk=7)  # chunks that split the outcomes unevenly
        dense = dense_conversion(SimpleNamespace(env=env, graph=graph), source, log_r, flow)
        assert torch.allclose(sparse.exp(), dense.exp(), atol=1e-5), type(source).__name__
    target = torch.zeros(env.n_states)
    target[env.index(env.terminal_states())] = torch.softmax(log_r, 0)
    if flow == "policy":  # the control converts exactly: its table samples R/Z
        p = terminal_distribution(graph, sparse_conversion(env, GoalReaching(env), log_r, flow))
        assert torch.allclose(p, target, atol=1e-5)


@pytest.mark.parametrize("keys", ["index", "hash"])
@pytest.mark.parametrize("flow", ["policy", "learned"])
def test_dag_log_probs_equal_the_dense_tables(flow: str, keys: str) -> None:
    """log F(s|y) + log P_F(a|s,y) for arbitrary triples on a prepend-or-append DAG (what the amortized
    predictor's canonical-order Q is fitted against) equals the dense tables' value, F by DP over each
    outcome's substrings for ``policy``; the same with the hashed keys of spaces without an int64 index."""
    from pipeline_lib.core.nets import OutcomeConditionedGFlowNet
    from pipeline_lib.domains.sequence.env import Sequence
    from pipeline_lib.ocgfn.pretrain import pair_dim
    from pipeline_lib.ocgfn.tables import dag_log_probs, flow_tables

    torch.manual_seed(0)
    env = Sequence("ACG", 4, min_length=2, mode="prepend_append")
    graph = StateGraph.build(env)
    net = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, False, "pairs",
                                     pair_dim(env, "pairs"))
    source = TrainedOCGFN(env, net)
    log_f, log_pf = flow_tables(env, graph, source, flow)
    ys = env.terminal_states()
    states = env.all_states()
    si, yi = torch.cartesian_prod(torch.arange(len(states)), torch.arange(len(ys))).unbind(-1)
    keep = env.can_reach(states[si], ys[yi])
    si, yi = si[keep], yi[keep]
    mask = env.forward_mask(states[si])
    a = torch.multinomial(mask.float(), 1, generator=torch.Generator().manual_seed(1))[:, 0]
    want = log_f[si, env.index(ys[yi])] + log_pf[si, env.index(ys[yi]), a]
    env.indexable = keys == "index"  # what a space past an int64 index takes (``tables.pair_keys``)
    got = dag_log_probs(env, source, states[si], ys[yi], a, flow)
    assert len(got) > 500 and torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("alphabet, length", [("ACGT", 40), ("protein", 14)])
def test_the_control_reaches_its_goal_by_dp_on_a_space_without_a_usable_index(alphabet: str, length: int) -> None:
    """On prepend-or-append strings of 40 bases (4^40 objects: no int64 index) or 14 residues (an index, but
    row * index overflows an int64) each outcome's ancestors are its distinct substrings, and F by DP over
    them for the untrained control is 1 at the outcome itself (the control always reaches its goal) and at
    s0, and 1e-30 at a state that is no substring of it."""
    from pipeline_lib.domains.sequence.env import Sequence
    from pipeline_lib.ocgfn.tables import ancestor_flows, dag_log_probs

    env = Sequence(alphabet, length, min_length=length - 4, mode="prepend_append")
    ys = env.random_outcomes(3, torch.Generator().manual_seed(0))
    ys[0, :length - 4] = torch.tensor([0, 1] * (length // 2 - 2))  # many repeated substrings: each counts once
    ys[0, length - 4:] = env.pad
    b, s, child = env.ancestors(ys)
    for row, y in enumerate(ys.tolist()):
        tokens = [t for t in y if t != env.pad]
        distinct = {tuple(tokens[i:j]) for i in range(len(tokens)) for j in range(i, len(tokens) + 1)}
        assert (b == row).sum() == len(distinct)
    # the moves inside y's sub-DAG are exactly those whose child can still produce y, and lead to that child
    mask = env.forward_mask(s)
    mask[:, env.stop] = False
    p, a = mask.nonzero(as_tuple=True)
    inside = env.can_reach(env.step(s[p], a), ys[b[p]])
    assert torch.equal(child[p, a] >= 0, inside) and (child[:, env.stop] == -1).all()
    c = child[p[inside], a[inside]]
    assert torch.equal(b[c], b[p[inside]]) and torch.equal(s[c], env.step(s[p[inside]], a[inside]))
    sub = ancestor_flows(env, GoalReaching(env), ys, "policy")
    at_goal = env.same(sub.states, ys[sub.b])
    assert at_goal.sum() == 3 and torch.allclose(sub.log_f[at_goal], torch.zeros(3), atol=1e-4)
    stop = torch.full((3,), env.stop)
    assert torch.allclose(dag_log_probs(env, GoalReaching(env), ys, ys, stop, "policy"), torch.zeros(3), atol=1e-4)
    assert torch.allclose(sub.log_f[env.is_initial(sub.states)], torch.zeros(3))
    other = ys.roll(1, 0)  # another outcome: almost surely no substring of this one
    got = dag_log_probs(env, GoalReaching(env), other, ys, stop, "policy")
    assert (got < -60).all()


def test_an_index_is_trusted_where_the_space_is_listed_or_the_domain_says_so() -> None:
    """A domain's ``index`` is promised where its space can be listed; beyond, only where it sets ``indexable``
    (README, Extending): a large space's index may overflow, so its (state, outcome) pairs are hashed instead."""
    from pipeline_lib.domains.sequence.env import Sequence
    from pipeline_lib.domains.subset.env import Subset
    from pipeline_lib.ocgfn.tables import indexed

    assert indexed(Subset(8)) and not indexed(Subset(40))  # both have an index; the second cannot be listed
    assert indexed(Sequence("ACGT", 20, mode="prepend_append"))  # it sets indexable: 4^20 objects fit an int64
    assert not indexed(Sequence("ACGT", 40, mode="prepend_append"))
