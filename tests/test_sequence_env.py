"""The batched sequence environment (append tree and prepend-append DAG): masks, transitions, indexing,
reachability, features, capabilities, constructor errors, the tree conversion against the dense exact reference,
and the ExactConversion method choosing the tree or the dense strategy by capability."""
from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch import nn

from pipeline_lib.core.env import CAPABILITIES, Environment, missing
from pipeline_lib.core.exact import StateGraph, converted_policy, terminal_distribution
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet, masked_log_softmax
from pipeline_lib.domains import make_env
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.methods import exact_conversion
from pipeline_lib.methods.exact_conversion import ExactConversion, ExactSettings, tree_conversion
from pipeline_lib.ocgfn.sources import TrainedOCGFN
from pipeline_lib.ocgfn.tables import flow_tables, reachability
from pipeline_lib.tasks.task import Task

D = torch.float64


def words(alphabet: str, length: int, min_length: int = 0) -> list[str]:
    """Every string of ``min_length``..``length`` letters, shortest first, then lexicographic (index order)."""
    return ["".join(w) for k in range(min_length, length + 1) for w in itertools.product(alphabet, repeat=k)]


def test_sizes_and_protocol() -> None:
    """Action counts, feature size and state count of both modes, the environment protocol and the capabilities
    each instance declares (enumerable and a tree for append; a DAG for prepend-append; too large to list)."""
    env = Sequence("ab", 3, 2)
    assert (env.vocab, env.pad, env.n_actions, env.stop, env.n_backward_actions) == (2, 2, 3, 2, 1)
    assert env.max_length == 4 and env.n_states == 1 + 2 + 4 + 8
    assert env.feature_dim == 3 * 3 + 4
    assert isinstance(env, Environment) and env.enumerable
    have = env.capabilities()
    assert set(have) == set(CAPABILITIES)
    assert have["enumerable"] is None and have["tree"] is None
    assert have["local_moves"] is None and have["neighbours"] is None
    assert isinstance(have["molecules"], str) and missing(env, ("enumerable", "tree")) is None
    dag = Sequence("abc", 4, 1, mode="prepend_append")
    assert (dag.n_actions, dag.stop, dag.n_backward_actions) == (7, 6, 2)
    assert dag.n_states == 1 + 3 + 9 + 27 + 81
    assert dag.capabilities()["enumerable"] is None
    assert "many trajectories" in dag.capabilities()["tree"]
    assert missing(dag, ("enumerable", "tree")).startswith("needs the 'tree' capability: prepend-or-append")
    assert Sequence("ACGT", 8).n_states == sum(4**k for k in range(9))
    big = Sequence("protein", 50)
    assert not big.enumerable
    assert "20^50 objects" in big.capabilities()["enumerable"]
    assert missing(big, ("local_moves", "enumerable")).startswith("needs the 'enumerable' capability")
    with pytest.raises(ValueError, match="too large to enumerate"):
        big.all_states()


def test_forward_mask_append() -> None:
    """Append, length 3, min_length 2: grow below length 3; stop from length 2 on; the full sequence only stops."""
    env = Sequence("ab", 3, 2)
    mask = env.forward_mask(env.encode(["", "a", "ab", "bba"]))
    expected = torch.tensor([[True, True, False], [True, True, False], [True, True, True], [False, False, True]])
    assert torch.equal(mask, expected)
    assert torch.equal(env.backward_mask(env.encode(["", "a", "ab", "bba"])), torch.tensor([[False], [True], [True],
                                                                                            [True]]))


def test_forward_and_backward_mask_prepend_append() -> None:
    """Prepend is masked at s0 (a single first token), allowed at lengths 1..L-1; backward: length 1 can only
    remove its last token, length >= 2 can remove either end."""
    env = Sequence("ab", 3, 2, mode="prepend_append")
    states = env.encode(["", "b", "ab", "aba"])
    expected = torch.tensor([  # append a, append b, prepend a, prepend b, stop
        [True, True, False, False, False],
        [True, True, True, True, False],
        [True, True, True, True, True],
        [False, False, False, False, True],
    ])
    assert torch.equal(env.forward_mask(states), expected)
    assert torch.equal(env.backward_mask(states), torch.tensor([[False, False], [True, False], [True, True],
                                                                [True, True]]))


def test_step_and_backward_action_hand_examples() -> None:
    """Append / prepend give the hand-written sequences; stop keeps the row; backward: append -> 0, prepend -> 1."""
    env = Sequence("ab", 3, 1, mode="prepend_append")
    states = env.encode(["", "a", "b", "ab", "ab", "ab"])
    actions = torch.tensor([0, 1, 2, 3, 0, 4])  # app a, app b, pre a, pre b, app a, stop
    out = env.step(states, actions)
    assert env.decode(out) == ["a", "ab", "ab", "bab", "aba", "ab"]
    assert torch.equal(states, env.encode(["", "a", "b", "ab", "ab", "ab"]))  # input not mutated
    assert env.backward_action(states, actions).tolist() == [0, 0, 1, 1, 0, 0]
    tree = Sequence("ACGT", 4)
    s = tree.encode(["", "GA", "TTT"])
    assert tree.decode(tree.step(s, torch.tensor([2, 3, 4]))) == ["G", "GAT", "TTT"]  # 4 = stop
    assert tree.backward_action(s, torch.tensor([2, 3, 4])).tolist() == [0, 0, 0]
    assert tree.is_initial(s).tolist() == [True, False, False]


@pytest.mark.parametrize("alphabet,length,min_length,mode", [("ab", 3, 2, "append"), ("abc", 3, 1, "prepend_append"),
                                                             ("ACGT", 3, 3, "append")])
def test_enumeration(alphabet: str, length: int, min_length: int, mode: str) -> None:
    """all_states is every string in (length, lexicographic) order; index inverts it; level = length;
    terminal_states = length >= min_length; random outcomes are terminal, in range, left-aligned."""
    env = Sequence(alphabet, length, min_length, mode=mode)
    states = env.all_states()
    assert env.n_states == sum(len(alphabet) ** k for k in range(length + 1)) == len(states)
    assert env.decode(states) == words(alphabet, length)
    assert torch.equal(env.index(states), torch.arange(env.n_states))
    assert torch.equal(env.level(states), torch.tensor([len(w) for w in words(alphabet, length)]))
    assert env.decode(env.terminal_states()) == words(alphabet, length, min_length)
    assert torch.equal(env.index(env.initial_states(3)), torch.zeros(3, dtype=torch.long))
    x = env.random_outcomes(600, torch.Generator().manual_seed(0))
    sizes = env.lengths(x)
    assert ((sizes >= min_length) & (sizes <= length)).all()
    assert set(sizes.tolist()) == set(range(min_length, length + 1))
    assert torch.equal(env.encode(env.decode(x)), x)  # left-aligned, pad after the last token
    assert env.forward_mask(x)[:, env.stop].all()


def test_index_hand_values() -> None:
    """index = offset of the length block + the prefix read as a base-V number."""
    env = Sequence("ACGT", 4)
    assert env.index(env.encode(["", "A", "T", "CA", "GTC", "TTTT"])).tolist() == [
        0, 1, 4, 5 + 4, 21 + 2 * 16 + 3 * 4 + 1, 85 + 255]


def brute_reach(strings: list[str], dag: bool) -> torch.Tensor:
    return torch.tensor([[(s in y) if dag else y.startswith(s) for y in strings] for s in strings])


@pytest.mark.parametrize("alphabet,length,mode", [("ab", 3, "append"), ("abc", 3, "append"),
                                                  ("ab", 3, "prepend_append"), ("abc", 4, "prepend_append")])
def test_can_reach_brute_force(alphabet: str, length: int, mode: str) -> None:
    """Append: s reaches y iff s is a prefix of y; prepend-append: iff s is a contiguous substring (s0 reaches
    everything). Checked on every pair, flat [P, L] and broadcast [S, Y, L] as reachability() calls it."""
    env = Sequence(alphabet, length, 1, mode=mode)
    states = env.all_states()
    expected = brute_reach(env.decode(states), mode == "prepend_append")
    n = len(states)
    i, j = torch.cartesian_prod(torch.arange(n), torch.arange(n)).T
    assert torch.equal(env.can_reach(states[i], states[j]).view(n, n), expected)
    assert torch.equal(reachability(env, StateGraph.build(env)), expected)
    assert expected[0].all()
    if mode == "prepend_append":  # the cases a prefix test would get wrong
        s, y = env.encode(["b", "ba", "ab", "ab"]), env.encode(["ab", "bab", "aab", "ba"])
        assert env.can_reach(s, y).tolist() == [True, True, True, False]


@pytest.mark.parametrize("mode", ["append", "prepend_append"])
def test_state_graph_edges(mode: str) -> None:
    """Every valid move leads to a valid state one level down whose hand-made parent (drop last / drop first)
    is the source; in-degree = backward_mask count (a tree for append); trajectories to a length-l object:
    1 for append, 2^(l-1) for prepend-append."""
    env = Sequence("abc", 3, 2, mode=mode)
    graph = StateGraph.build(env)
    states = graph.states
    levels = env.level(states)
    in_degree = torch.zeros(env.n_states, dtype=torch.long)
    for a in range(env.n_actions - 1):
        src = graph.mask[:, a].nonzero(as_tuple=True)[0]
        child = graph.child[src, a]
        assert ((child >= 0) & (child < env.n_states)).all()
        assert torch.equal(levels[child], levels[src] + 1)
        assert torch.equal(env.index(env.step(states[src], torch.full_like(src, a))), child)
        back = env.backward_action(states[src], torch.full_like(src, a))
        assert env.backward_mask(states[child])[torch.arange(len(src)), back].all()
        for s_str, c_str, b in zip(env.decode(states[src]), env.decode(states[child]), back.tolist()):
            assert (c_str[:-1] if b == 0 else c_str[1:]) == s_str
        in_degree.index_add_(0, child, torch.ones_like(child))
    assert (graph.child[:, env.stop] == -1).all() and (graph.child[~graph.mask] == -1).all()
    assert torch.equal(in_degree, env.backward_mask(states).sum(-1))
    paths = torch.zeros(env.n_states, dtype=torch.long)
    paths[0] = 1
    for src, _, child in graph.levels:
        paths.index_add_(0, child, paths[src])
    expected = torch.where(levels > 0, 2 ** (levels - 1), 1) if mode == "prepend_append" else torch.ones_like(levels)
    assert torch.equal(paths, expected)


def test_featurize_hand_example() -> None:
    """Features: one-hot of each position (pad included, [L*(V+1)]), then a one-hot of the length [L+1]."""
    env = Sequence("ab", 3)
    feats = env.featurize(env.encode(["ba", "", "abb"]))
    assert feats.shape == (3, 3 * 3 + 4) == (3, env.feature_dim) and feats.dtype == torch.float32
    assert feats[0].tolist() == [0, 1, 0, 1, 0, 0, 0, 0, 1] + [0, 0, 1, 0]
    all_feats = env.featurize(env.all_states())
    tokens, size = all_feats[:, :9], all_feats[:, 9:]
    assert torch.equal(tokens.sum(1), torch.full((env.n_states,), 3.0))
    assert torch.equal(size.argmax(1), env.lengths(env.all_states())) and torch.equal(size.sum(1),
                                                                                     torch.ones(env.n_states))
    assert len(torch.unique(all_feats, dim=0)) == env.n_states


def test_alphabet_presets_and_round_trip() -> None:
    """Presets dna / rna / protein / bits<k>; encode and decode invert each other, with multi-character tokens."""
    assert Sequence("dna", 2).alphabet == list("ACGT") and Sequence("rna", 2).alphabet == list("ACGU")
    assert Sequence("protein", 2).alphabet == list("ACDEFGHIKLMNPQRSTVWY")
    bits = Sequence("bits3", 2)
    assert bits.alphabet == ["000", "001", "010", "011", "100", "101", "110", "111"] and bits.vocab == 8
    x = bits.encode(["000111", "101", ""])
    assert x.tolist() == [[0, 7], [5, 8], [8, 8]]
    assert bits.decode(x) == ["000111", "101", ""]
    env = make_env("sequence", {"alphabet": "dna", "length": 5, "min_length": 2, "mode": "prepend_append"})
    assert isinstance(env, Sequence) and env.prepend and env.min_length == 2
    strings = ["ACGTA", "TT", "GCA"]
    assert env.decode(env.encode(strings)) == strings
    assert Sequence(["x", "yz"], 3).decode(Sequence(["x", "yz"], 3).encode(["yzxyz"])) == ["yzxyz"]


@pytest.mark.parametrize("kwargs,field", [
    ({"alphabet": "ab", "length": 0}, "length"),
    ({"alphabet": "ab", "length": 3, "min_length": 4}, "min_length"),
    ({"alphabet": "ab", "length": 3, "min_length": 0}, "min_length"),
    ({"alphabet": "ab", "length": 3, "mode": "sideways"}, "mode"),
    ({"alphabet": "aab", "length": 3}, "alphabet"),
    ({"alphabet": "a", "length": 3}, "alphabet"),
])
def test_bad_constructor_arguments(kwargs: dict, field: str) -> None:
    """Bad arguments raise ValueError whose message starts with the offending field."""
    with pytest.raises(ValueError, match=rf"^{field}: "):
        Sequence(**kwargs)


# ---------------------------------------------------------------------------------- tree conversion


class PerfectOCGFN(nn.Module):
    """Hand-made perfect OC-GFN on an append env: append y's next token, stop exactly at y; log F = 0 (the
    exact visit probability on y's path). It reads state and outcome back from the one-hot features."""

    def __init__(self, env: Sequence) -> None:
        super().__init__()
        self.env = env

    def forward(self, state_feats, outcome_feats, initial):
        env = self.env
        width = env.length * (env.vocab + 1)
        s = state_feats[:, :width].view(-1, env.length, env.vocab + 1).argmax(-1)
        y = outcome_feats[:, :width].view(-1, env.length, env.vocab + 1).argmax(-1)
        n, size = env.lengths(s), env.lengths(y)
        nxt = torch.where(n < size, y.gather(1, n.clamp(max=env.length - 1)[:, None])[:, 0], env.stop)
        logits = torch.zeros(len(s), env.n_actions)
        logits[torch.arange(len(s)), nxt] = 60.0
        return torch.zeros(len(s)), logits, None


def random_model(env: Sequence, seed: int) -> OutcomeConditionedGFlowNet:
    torch.manual_seed(seed)
    return OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 2, False).eval()


def dense_reference(env: Sequence, model, log_r: torch.Tensor, flow: str) -> torch.Tensor:
    """The conversion through the dense [S, Y] tables of ocgfn/tables.py and core/exact.py (non-terminals get
    log R = -1e4)."""
    graph = StateGraph.build(env)
    log_f, log_pf = flow_tables(env, graph, TrainedOCGFN(env, model), flow)
    dense = torch.full((env.n_states,), -1e4)
    dense[env.index(env.terminal_states())] = log_r
    return converted_policy(graph, reachability(env, graph), dense, log_f, log_pf)


@pytest.mark.parametrize("flow", ["policy", "learned"])
@pytest.mark.parametrize("alphabet,length,min_length", [("ab", 3, 1), ("ab", 3, 3), ("abc", 2, 2), ("abc", 3, 2)])
def test_tree_conversion_matches_dense_reference(flow: str, alphabet: str, length: int, min_length: int) -> None:
    """For a random OC-GFN, the (outcome, depth) scatter of tree_conversion equals the dense exact conversion."""
    env = Sequence(alphabet, length, min_length)
    model = random_model(env, 3)
    log_r = torch.rand(len(env.terminal_states()), generator=torch.Generator().manual_seed(1)) * 3
    table = tree_conversion(env, TrainedOCGFN(env, model), log_r, flow)
    reference = dense_reference(env, model, log_r, flow)
    assert table.shape == (env.n_states, env.n_actions)
    assert torch.allclose(table.exp(), reference.exp(), atol=1e-5, rtol=0)
    assert torch.allclose(table.exp().sum(-1), torch.ones(env.n_states), atol=1e-5)
    assert (table.exp()[~env.forward_mask(env.all_states())] == 0).all()


@pytest.mark.parametrize("flow", ["policy", "learned"])
@pytest.mark.parametrize("min_length", [1, 3])
def test_tree_conversion_of_perfect_ocgfn_is_r_over_z(flow: str, min_length: int) -> None:
    """With a perfect OC-GFN the converted policy's exact terminal distribution is R/Z; hand value at s0."""
    env = Sequence("ab", 3, min_length)
    ys = env.terminal_states()
    r = torch.rand(len(ys), generator=torch.Generator().manual_seed(2)) + 0.1
    table = tree_conversion(env, TrainedOCGFN(env, PerfectOCGFN(env)), r.log(), flow)
    p = terminal_distribution(StateGraph.build(env), table.double())
    target = torch.zeros(env.n_states, dtype=D)
    target[env.index(ys)] = (r / r.sum()).double()
    assert torch.allclose(p, target, atol=1e-5, rtol=0)
    below_a = env.can_reach(env.encode(["a"]).expand(len(ys), -1), ys)  # P(append a | s0) = R(a...)/Z
    assert table[0, 0].exp().item() == pytest.approx(float(r[below_a].sum() / r.sum()), abs=1e-6)


class PrependingOCGFN(nn.Module):
    """Hand-made perfect OC-GFN on a prepend-append env that builds y right to left: append y's last token at
    s0, then prepend the token before the current suffix, stop exactly at y. It never follows y's append path,
    so a tree-style sum along that path sees none of its probability."""

    def __init__(self, env: Sequence) -> None:
        super().__init__()
        self.env = env

    def forward(self, state_feats, outcome_feats, initial):
        env = self.env
        width = env.length * (env.vocab + 1)
        s = state_feats[:, :width].view(-1, env.length, env.vocab + 1).argmax(-1)
        y = outcome_feats[:, :width].view(-1, env.length, env.vocab + 1).argmax(-1)
        n, size = env.lengths(s), env.lengths(y)
        last = y.gather(1, (size - 1).clamp(min=0)[:, None])[:, 0]
        before = y.gather(1, (size - n - 1).clamp(min=0)[:, None])[:, 0] + env.vocab
        nxt = torch.where(n == 0, last, torch.where(n < size, before, env.stop))
        logits = torch.zeros(len(s), env.n_actions)
        logits[torch.arange(len(s)), nxt] = 60.0
        return torch.zeros(len(s)), logits, None


def ab_reward(strings: list[str]) -> list[float]:
    """A plug-in reward on strings over {a, b} (what ``env.objects`` hands it)."""
    return [0.1 + s.count("a") + 2.0 * s.endswith("b") + 0.3 * len(s) for s in strings]


AB_REWARD = f"{Path(__file__).resolve()}:ab_reward"


def _refuse(name: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} should not be used on this environment")
    return refuse


@pytest.mark.parametrize("min_length", [1, 3])
def test_exact_conversion_method_uses_the_tree_on_an_append_space(min_length: int,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """ExactConversion through a Task on a tiny append-only space takes the tree strategy (never the dense
    tables), queries each outcome once, and its table's terminal distribution is the task's R/Z."""
    env = Sequence("ab", 3, min_length)
    task = Task(env, {"reward": AB_REWARD, "params": {}}, "resources")
    monkeypatch.setattr(exact_conversion, "dense_conversion", _refuse("dense_conversion"))
    method = ExactConversion(task, ExactSettings(flow="policy"), seed=0, device=torch.device("cpu"),
                             pretrained=TrainedOCGFN(env, PerfectOCGFN(env)))
    df = method.run(None)
    n_terminal = len(env.terminal_states())
    assert df["step"].tolist() == [0]
    assert df["reward_calls"].tolist() == [n_terminal] == df["unique_reward_calls"].tolist()
    assert task.oracle.calls == n_terminal
    p = terminal_distribution(task.graph, method.table().double())
    assert torch.allclose(p, task.target.double(), atol=1e-5, rtol=0)
    assert df["l1"].iloc[0] < 1e-5
    perfect = TrainedOCGFN(env, PerfectOCGFN(env))
    assert torch.allclose(method.table(), tree_conversion(env, perfect, task.landscape.log(), "policy"))


def test_exact_conversion_method_uses_dense_tables_on_a_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    """On the prepend-append DAG ExactConversion takes the dense strategy (never the tree scatter, which
    refuses the DAG), and it is exact for an OC-GFN that reaches y through prepends."""
    env = Sequence("ab", 3, 1, mode="prepend_append")
    task = Task(env, {"reward": AB_REWARD, "params": {}}, "resources")
    model = PrependingOCGFN(env)
    monkeypatch.setattr(exact_conversion, "tree_conversion", _refuse("tree_conversion"))
    method = ExactConversion(task, ExactSettings(flow="policy"), seed=0, device=torch.device("cpu"),
                             pretrained=TrainedOCGFN(env, model))
    df = method.run(None)
    assert df["reward_calls"].tolist() == [len(env.terminal_states())] == [14]
    p = terminal_distribution(task.graph, method.table().double())
    assert torch.allclose(p, task.target.double(), atol=1e-5, rtol=0)
    assert df["l1"].iloc[0] < 1e-5


def test_tree_conversion_needs_append() -> None:
    """The tree conversion refuses the prepend-append DAG (no tree capability), naming what it needs."""
    env = Sequence("ab", 2, mode="prepend_append")
    with pytest.raises(ValueError, match="tree|append"):
        tree_conversion(env, TrainedOCGFN(env, random_model(env, 0)), torch.zeros(4), "policy")


def float64_tree_reference(env: Sequence, model, log_r: torch.Tensor) -> torch.Tensor:
    """The policy-flow tree conversion computed per outcome in float64: log R(y) + sum of log P_F along y's path
    up to and including (s, a), log-sum-exp over the outcomes below (s, a)."""
    ys = env.terminal_states()
    m, length = ys.shape
    j = torch.arange(length + 1).repeat(m)
    b = torch.arange(m).repeat_interleave(length + 1)  # min_length = length: every y has L + 1 prefixes
    prefix = torch.where(torch.arange(length)[None, :] < j[:, None], ys[b], env.pad)
    action = torch.where(j < length, ys[b, j.clamp(max=length - 1)], env.stop)
    with torch.no_grad():
        _, logits, _ = model(env.featurize(prefix), env.featurize(ys[b]), env.is_initial(prefix))
    log_pf = masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0].double()
    weight = log_r.double()[b] + log_pf.view(m, length + 1).cumsum(1).view(-1)
    flat = env.index(prefix) * env.n_actions + action
    table = torch.full((env.n_states * env.n_actions,), -1e9, dtype=D)
    peak = table.scatter_reduce(0, flat, weight, reduce="amax")
    total = torch.zeros_like(table).index_add(0, flat, (weight - peak[flat]).exp())
    table = torch.where(total > 0, peak + total.clamp(min=1e-300).log(), table).view(env.n_states, env.n_actions)
    return masked_log_softmax(table, env.forward_mask(env.all_states()))


def test_tree_conversion_small_chunks_match_float64_reference() -> None:
    """With small chunks, the tree conversion on ACGT^5 agrees with a float64 per-outcome reference to 1e-5."""
    env = Sequence("ACGT", 5)
    model = random_model(env, 4)
    log_r = torch.rand(4**5, generator=torch.Generator().manual_seed(5))
    reference = float64_tree_reference(env, model, log_r)
    table = tree_conversion(env, TrainedOCGFN(env, model), log_r, "policy", chunk=16)
    assert torch.allclose(table.double().exp(), reference.exp(), atol=1e-5, rtol=0)


def test_tree_conversion_default_chunk_matches_float64_reference() -> None:
    """With the default chunk (all outcomes at once), the conversion on ACGT^5 agrees with float64 to 1e-5:
    path sums are per outcome, so no round-off builds up across outcomes."""
    env = Sequence("ACGT", 5)
    model = random_model(env, 4)
    log_r = torch.rand(4**5, generator=torch.Generator().manual_seed(5))
    reference = float64_tree_reference(env, model, log_r)
    table = tree_conversion(env, TrainedOCGFN(env, model), log_r, "policy")
    assert torch.allclose(table.double().exp(), reference.exp(), atol=1e-5, rtol=0)
