"""Sequence adaptation methods and their discovery bookkeeping: the counting oracle, mode counters, local
optima, the methods (scratch, MCMC, DQN, amortized) through a Task, exact resume, path_log_probs and the
config checks of methods and modes on sequence (and grid) environments."""
from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path

import numpy as np
import pandas.testing as pdt
import pytest
import torch

from pipeline_lib import io
from pipeline_lib.config import ConfigError, check, method_config
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet, masked_log_softmax
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.domains.sequence.rewards import reference_modes
from pipeline_lib.methods import method_class
from pipeline_lib.methods.amortized import Amortized, AutoregressiveQ
from pipeline_lib.methods.dqn import DQN, ReplayBuffer
from pipeline_lib.methods.mcmc import MCMC
from pipeline_lib.methods.scratch import Scratch
from pipeline_lib.ocgfn.sources import TrainedOCGFN
from pipeline_lib.ocgfn.tables import path_log_probs
from pipeline_lib.tasks.metrics import sample_summary
from pipeline_lib.tasks.modes import ExactModes, ReferenceModes, ThresholdModes, local_optima, make_modes
from pipeline_lib.tasks.oracle import Oracle
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")
CURVE_COLUMNS = ["step", "trajectories", "transitions", "reward_calls", "unique_reward_calls", "modes_found",
                 "top100_reward", "top100_diversity", "max_reward", "l1", "kl", "seconds"]
# the settings every method below runs with; each method takes the fields its own Settings class has
COMMON = {"steps": 12, "eval_every": 4, "checkpoint_every": 4, "batch_size": 8, "hidden": 32, "buffer_size": 200}
CLASSES = {"scratch": Scratch, "mcmc": MCMC, "dqn": DQN, "amortized": Amortized}


class LoggedReward:
    """0.01 + the fraction of 'A' (token 0) over the full length; remembers every row it was asked about."""

    def __init__(self, env: Sequence) -> None:
        self.env, self.seen = env, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return 0.01 + (x == 0).float().sum(-1) / self.env.length


def string_reward(s: str, length: int) -> float:
    return 0.01 + s.count("A") / length


def a_share(strings: list[str], length: int, seen: list) -> list[float]:
    """The same reward as a plug-in (it receives the decoded strings); appends each batch it is asked about."""
    seen.append(list(strings))
    return [string_reward(s, length) for s in strings]


def ac_weights(strings: list[str]) -> list[float]:
    """A plug-in reward on {A, C} strings: 1 + 3 per A, + 2 for a single token."""
    return [1.0 + 3.0 * s.count("A") + (2.0 if len(s) == 1 else 0.0) for s in strings]


A_SHARE = f"{Path(__file__).resolve()}:a_share"
AC_WEIGHTS = f"{Path(__file__).resolve()}:ac_weights"
THRESHOLD_MODES = {"kind": "threshold", "threshold": 0.5, "min_distance": 2}


def make_task(env: Sequence) -> tuple[Task, list[list[str]]]:
    """A task whose plug-in reward logs every batch of strings it is asked about (the list returned)."""
    seen: list[list[str]] = []
    return Task(env, {"reward": A_SHARE, "params": {"length": env.length, "seen": seen},
                      "modes": THRESHOLD_MODES}), seen


def settings(cls, **changes):
    fields = {f.name for f in dataclasses.fields(cls.Settings)}
    return cls.Settings(**{k: v for k, v in {**COMMON, **changes}.items() if k in fields})


def random_model(env: Sequence, seed: int = 0) -> OutcomeConditionedGFlowNet:
    torch.manual_seed(seed)
    return OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False)


def make_trainer(kind: str, task: Task, seed: int = 0, **changes):
    if kind.startswith("amortized"):
        return Amortized(task, settings(Amortized, flow=kind.split("_")[1], **changes), seed, CPU,
                         pretrained=TrainedOCGFN(task.env, random_model(task.env)))
    return CLASSES[kind](task, settings(CLASSES[kind], **changes), seed, CPU)


def curve(df):
    """A curve without its wall-clock column (the only one that may differ between identical runs)."""
    return df.drop(columns="seconds")


# ---------------------------------------------------------------------------------- oracle and modes


def test_top_k_reward_counts_objects_not_found_as_zero() -> None:
    """With fewer than k distinct objects found, the top-k mean is their sum over k: finding one more object never
    lowers it, and a search that found few good objects does not beat one that found those and more."""
    env = Sequence("ACGT", 4)
    oracle = Oracle(LoggedReward(env), ThresholdModes(0.2, 2, env.distance), env.object_keys, env.diversity, top_k=3)
    assert oracle.row()["top3_reward"] == 0.0
    oracle(env.encode(["AAAA", "AAAA"]))
    assert oracle.row()["top3_reward"] == pytest.approx(1.01 / 3)
    oracle(env.encode(["CCCC"]))  # a poor object still adds
    assert oracle.row()["top3_reward"] == pytest.approx((1.01 + 0.01) / 3)
    few = sample_summary(env, env.encode(["AAAA"] * 5), torch.full((5,), 1.01), ThresholdModes(0.2, 2, env.distance),
                         top_k=3)
    more = sample_summary(env, env.encode(["AAAA", "AAGG", "CCCC"]), torch.tensor([1.01, 0.51, 0.01]),
                          ThresholdModes(0.2, 2, env.distance), top_k=3)
    assert few["top3_reward"] == pytest.approx(1.01 / 3) and more["top3_reward"] == pytest.approx(1.53 / 3)


def test_oracle_counts_and_row() -> None:
    """Calls count every row, unique calls distinct rows; the row's top-k reward / diversity are those of the k
    best distinct objects, by hand."""
    env = Sequence("ACGT", 4)
    oracle = Oracle(LoggedReward(env), ThresholdModes(0.2, 2, env.distance), env.object_keys, env.diversity, top_k=3)
    values = oracle(env.encode(["AAAA", "CCCC", "AAAA", "ACGT", "AAAA"]))
    assert values.tolist() == pytest.approx([1.01, 0.01, 1.01, 0.26, 1.01])
    assert (oracle.calls, oracle.unique_calls) == (5, 3)
    oracle(env.encode(["CCCC", "AAGG"]))
    assert (oracle.calls, oracle.unique_calls) == (7, 4)
    x, r = oracle.best(2)
    assert env.decode(x) == ["AAAA", "AAGG"] and r.tolist() == pytest.approx([1.01, 0.51])
    row = oracle.row()
    # top 3 = AAAA, AAGG, ACGT; distances AAAA-AAGG 2, AAAA-ACGT 3, AAGG-ACGT 2
    assert row == pytest.approx({"reward_calls": 7, "unique_reward_calls": 4, "modes_found": 3,
                                 "top3_reward": (1.01 + 0.51 + 0.26) / 3, "top3_diversity": 7 / 3,
                                 "max_reward": 1.01})
    # modes (threshold 0.2, distance >= 2) in order of discovery: AAAA, ACGT (3 away), AAGG (2 from both)
    assert env.decode(oracle.modes.modes) == ["AAAA", "ACGT", "AAGG"]


def test_oracle_state_dict_round_trip() -> None:
    """A fresh oracle loaded from a state dict has the same row, and still recognises the objects seen before."""
    env = Sequence("ACGT", 4, 2)
    first = Oracle(LoggedReward(env), ThresholdModes(0.3, 2, env.distance), env.object_keys, env.diversity, top_k=4)
    first(env.encode(["AAAA", "AC", "ACG", "AC", "TTT", "GATA"]))
    first(env.encode(["AAAC", "TTT"]))
    state = first.state_dict()
    second = Oracle(LoggedReward(env), ThresholdModes(0.3, 2, env.distance), env.object_keys, env.diversity, top_k=4)
    second.load_state_dict(state)
    assert second.row() == first.row()
    for oracle in (first, second):
        oracle(env.encode(["AC", "CCCC"]))
    assert second.row() == first.row()
    assert (second.calls, second.unique_calls) == (10, 7)


def test_novel_modes_are_the_modes_outside_the_known_objects() -> None:
    """With a data set's training objects known, novel_modes_found counts the modes (the same ones, in the same
    order of discovery) whose object is not a data object: a subset of modes_found, even where a data mode
    shadows its neighbours; it survives a state-dict round trip, and an oracle without known objects has none."""
    env = Sequence("ACGT", 4)
    known = set(env.object_keys(env.encode(["AAAA", "TTTT"])))

    def oracle() -> Oracle:
        return Oracle(LoggedReward(env), ThresholdModes(0.2, 2, env.distance), env.object_keys, env.diversity,
                      top_k=3, known=known)

    first = oracle()
    first(env.encode(["AAAC", "AAAA", "AACA"]))  # AAAC first: AAAA (data) is 1 from it, AACA 2
    assert (first.row()["modes_found"], first.row()["novel_modes_found"]) == (2, 2)
    assert env.decode(first.modes.modes) == ["AAAC", "AACA"]
    shadow = oracle()
    shadow(env.encode(["AAAA", "AAAC", "AACA"]))  # AAAA (data) first: both others are 1 from it, no mode at all
    assert (shadow.row()["modes_found"], shadow.row()["novel_modes_found"]) == (1, 0)
    second = oracle()
    second.load_state_dict(shadow.state_dict())
    for o in (shadow, second):
        o(env.encode(["CCCC", "ACGT", "TTTT", "AAGG"]))  # ACGT and AAGG novel modes; CCCC, TTTT below 0.2
    assert second.row() == shadow.row()
    assert (shadow.row()["modes_found"], shadow.row()["novel_modes_found"]) == (3, 2)
    assert env.decode(shadow.modes.modes) == ["AAAA", "ACGT", "AAGG"]  # the counter's own modes, unchanged
    plain = Oracle(LoggedReward(env), ThresholdModes(0.2, 2, env.distance), env.object_keys, env.diversity)
    plain(env.encode(["AAAA", "AAAC", "AACA", "CCCC", "ACGT", "TTTT", "AAGG"]))
    assert "novel_modes_found" not in plain.row() and plain.modes.count() == 3  # the same modes as in runs


def test_hamming_and_diversity() -> None:
    """Pairwise distances count pad-vs-token mismatches; diversity of two objects at distance d is d."""
    env = Sequence("ACGT", 4, 1)
    x = env.encode(["AAAA", "ACGA", "AC", "T"])
    assert env.distance(x, x).tolist() == [[0, 2, 3, 4], [2, 0, 2, 4], [3, 2, 0, 2], [4, 4, 2, 0]]
    assert env.diversity(x[:2]) == 2.0 and env.diversity(x[2:]) == 2.0 and env.diversity(x[:1]) == 0.0
    assert env.diversity(x) == pytest.approx((2 + 3 + 4 + 2 + 4 + 2) / 6)


def test_sample_summary_hand_values() -> None:
    """Final-sample metrics: unique fraction, modes and top-k over the distinct samples, mean over all."""
    env = Sequence("ACGT", 4)
    x = env.encode(["AAAA", "CCCC", "AAAA", "AAGG"])
    r = torch.tensor([1.01, 0.01, 1.01, 0.51])
    summary = sample_summary(env, x, r, ThresholdModes(0.5, 2, env.distance), top_k=2)
    assert summary == pytest.approx({"samples": 4, "unique_fraction": 0.75, "modes_in_samples": 2,
                                     "top2_reward": (1.01 + 0.51) / 2, "top2_diversity": 2.0,
                                     "mean_reward": (1.01 + 0.01 + 1.01 + 0.51) / 4})


def test_threshold_modes_greedy() -> None:
    """Three objects above the threshold, two of them 1 apart: 2 modes, the first found of the close pair kept."""
    env = Sequence("ACGT", 4)
    modes = ThresholdModes(0.5, 2, env.distance)
    modes.update(env.encode(["AAAA", "GGGG", "AAAC", "CCCC"]), torch.tensor([0.9, 0.1, 0.8, 0.7]))
    assert modes.count() == 2 and env.decode(modes.modes) == ["AAAA", "CCCC"]
    modes.update(env.encode(["CCCA", "GGTT"]), torch.tensor([0.95, 0.6]))  # CCCA is 1 from CCCC
    assert env.decode(modes.modes) == ["AAAA", "CCCC", "GGTT"]
    other = ThresholdModes(0.5, 2, env.distance)
    other.update(env.encode(["AAAC", "AAAA"]), torch.tensor([0.8, 0.9]))  # order of discovery decides
    assert env.decode(other.modes) == ["AAAC"]


def test_bit_projection_and_reference_modes() -> None:
    """bits2 tokens project to their bits (pad -> 2); a reference is found exactly, or within the radius in bit
    space (one token apart but two bits apart is not within radius 1)."""
    env = Sequence("bits2", 4)
    params = {"modes": ["00000000", "11110000", "01010101"]}
    references, project, n_bits = reference_modes("bitseq", params, env)
    assert project(torch.arange(5)[None]).tolist() == [[0, 0, 0, 1, 1, 0, 1, 1, 2, 2]] and n_bits == 8
    assert env.decode(references) == ["00000000", "11110000", "01010101"]

    def no_landscape() -> torch.Tensor:
        raise AssertionError("reference modes need no exact landscape")

    modes = make_modes(env, {"kind": "reference", "delta": 0.125}, "bitseq", params, no_landscape)
    assert isinstance(modes, ReferenceModes) and modes.total == 3 and modes.radius == 1.0
    assert modes.references[1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    modes.update(env.encode(["00000000", "11110011"]), torch.ones(2))
    assert modes.found.tolist() == [True, False, False]
    modes.update(env.encode(["11110001"]), torch.ones(1))
    assert modes.found.tolist() == [True, True, False] and modes.count() == 2
    with pytest.raises(ValueError, match="k-bit word"):
        reference_modes("bitseq", {}, Sequence("ACGT", 2))
    with pytest.raises(ValueError, match="modes.kind 'reference' needs a reward with its own mode set: bit sequences "
                                         "need k-bit word tokens"):
        make_modes(Sequence("ACGT", 2), {"kind": "reference"}, "bitseq", {}, no_landscape)
    with pytest.raises(ValueError, match="reference modes come from the bitseq reward"):
        make_modes(env, {"kind": "reference"}, "rna_binding", {}, no_landscape)


def test_exact_modes_through_oracle() -> None:
    """ExactModes marks a mode once an object with that index is queried; non-modes never count."""
    env = Sequence("ab", 2)
    mask = torch.zeros(env.n_states, dtype=torch.bool)
    mask[env.index(env.encode(["ab", "ba"]))] = True
    oracle = Oracle(lambda x: torch.ones(len(x)), ExactModes(mask, env.index), env.object_keys, env.diversity)
    assert oracle.modes.total == 2
    oracle(env.encode(["ab", "aa", "ab"]))
    assert oracle.row()["modes_found"] == 1
    oracle(env.encode(["bb", "ba"]))
    assert oracle.row()["modes_found"] == 2 and oracle.modes.found.sum() == 2


def test_local_optima_hand_example() -> None:
    """R(aa, ab, ba, bb) = (4, 1, 2, 3): aa and bb beat their substitutions; top 25% keeps only aa."""
    env = Sequence("ab", 2)
    assert env.decode(env.terminal_states()) == ["aa", "ab", "ba", "bb"]
    values = torch.tensor([4.0, 1.0, 2.0, 3.0])  # R over env.terminal_states()
    for fraction, expected in [(1.0, ["aa", "bb"]), (0.5, ["aa", "bb"]), (0.25, ["aa"])]:
        mask = local_optima(env, values, fraction)
        assert env.decode(env.all_states()[mask]) == expected



def test_local_optima_on_a_grid() -> None:
    """local_optima is a mode kind of every enumerable space with neighbours: on a grid the neighbours are the
    unit steps that stay on the grid. 1-D hand example R = (1, 3, 2, 5, 4): cells 1 and 3; then a 4 x 4 grid
    against brute force, through make_modes."""
    mask = local_optima(HyperGrid(ndim=1, side=5), torch.tensor([1.0, 3.0, 2.0, 5.0, 4.0]), 1.0)
    assert mask.nonzero().flatten().tolist() == [1, 3]
    env = HyperGrid(ndim=2, side=4)
    landscape = torch.tensor(np.random.default_rng(0).permutation(16).astype(np.float32) + 1)
    value = {tuple(c): float(r) for c, r in zip(env.terminal_states().tolist(), landscape)}
    cut = np.quantile(list(value.values()), 1 - 0.5)
    expected = {c for c, r in value.items() if r >= cut and all(
        r >= value[n] for n in [(c[0] + 1, c[1]), (c[0] - 1, c[1]), (c[0], c[1] + 1), (c[0], c[1] - 1)]
        if n in value)}
    modes = make_modes(env, {"kind": "local_optima", "top_fraction": 0.5}, "corner", {}, lambda: landscape)
    assert {tuple(c) for c in env.all_states()[modes.mask].tolist()} == expected and expected


@pytest.mark.parametrize("alphabet,length,min_length,fraction", [("ACG", 3, 2, 0.3), ("ab", 4, 1, 0.5),
                                                                 ("ACGT", 3, 3, 0.1)])
def test_local_optima_brute_force(alphabet: str, length: int, min_length: int, fraction: float) -> None:
    """Mask = objects no single-site substitution improves, within the top fraction: brute force on strings."""
    env = Sequence(alphabet, length, min_length)
    strings = ["".join(w) for k in range(min_length, length + 1) for w in itertools.product(alphabet, repeat=k)]
    rng = np.random.default_rng(len(strings))
    value = dict(zip(strings, rng.permutation(len(strings)).astype(float) + 1))  # distinct, exact in float32
    reward = torch.tensor([value[s] for s in env.decode(env.terminal_states())])
    cut = np.quantile(list(value.values()), 1 - fraction)
    expected = set()
    for s in strings:
        neighbours = [s[:p] + c + s[p + 1:] for p in range(len(s)) for c in alphabet]
        if all(value[s] >= value[n] for n in neighbours) and value[s] >= cut:
            expected.add(s)
    mask = local_optima(env, reward, fraction)
    assert set(env.decode(env.all_states()[mask])) == expected and len(expected) > 0
    assert not mask[env.lengths(env.all_states()) < min_length].any()


# ---------------------------------------------------------------------------------- methods


KINDS = ["scratch", "mcmc", "dqn", "amortized_policy", "amortized_learned"]


@pytest.mark.parametrize("kind", KINDS)
def test_trainer_curve_and_samples(kind: str) -> None:
    """Each method runs; curve rows have the shared columns at steps 0, 1, 2, 4, 8, 12; reward calls are
    non-decreasing and follow each method's count, the reward function computes exactly the distinct ones; the
    top-100 reward and the modes are those of the distinct objects queried; the exact L1 / KL are those of the
    policy a method holds (none for MCMC); sample(n) gives n terminal objects without calls."""
    env = Sequence("ACGT", 4, 3)
    task, seen = make_task(env)
    # the exact target reads the landscape once, uncounted (evaluation, not search): 64 + 256 objects
    assert len(task.landscape) == len(seen[0]) == 320 and task.oracle.calls == 0
    seen.clear()
    asked: list[list[str]] = []  # what the oracle asks of the reward, recorded apart from the oracle's own count
    reward = task.oracle.reward
    task.oracle.reward = lambda x: (asked.append(env.decode(x)), reward(x))[1]
    trainer = make_trainer(kind, task)
    df = trainer.run()
    assert set(CURVE_COLUMNS) <= set(df.columns)
    assert df["step"].tolist() == [0, 1, 2, 4, 8, 12]
    calls = df["reward_calls"].to_numpy()
    assert (np.diff(calls) >= 0).all() and (np.diff(calls) > 0).all()
    assert calls[-1] == task.oracle.calls  # every query a method makes is counted
    # a cached oracle asks the reward for each distinct object once; the plug-in computes each object once per job
    # and the landscape has computed all of them, so the search costs it nothing new
    distinct = df["unique_reward_calls"].to_numpy()
    assert distinct[-1] == task.oracle.unique_calls == len({s for batch in asked for s in batch}) <= calls[-1]
    assert sum(len(batch) for batch in asked) == distinct[-1] and not any(seen)
    steps, traj, trans = df["step"].to_numpy(), df["trajectories"].to_numpy(), df["transitions"].to_numpy()
    assert (traj == 8 * steps).all()
    if kind == "mcmc":
        # one call per chain at the start, then one per chain that moved (a move out of range keeps x)
        assert calls[0] == 8 and (np.diff(calls) <= 8 * np.diff(steps)).all() and (trans == traj).all()
        assert df["l1"].isna().all() and df["kl"].isna().all()  # chains hold no policy table
    else:  # every trajectory makes 3 or 4 moves, then stops
        assert ((trans >= 4 * traj) & (trans <= 5 * traj)).all()
        if kind.startswith("amortized"):  # one outcome per stop, outcomes_per_transition (4) per move
            assert (calls == traj + 4 * (trans - traj)).all()
            assert isinstance(trainer.q, AutoregressiveQ)  # append-only: a tree
        else:
            assert (calls == 8 * steps).all()
        assert ((df["l1"] > 0) & (df["l1"] <= 2)).all() and (df["kl"] > 0).all()
    strings = [s for batch in asked for s in batch]
    distinct = {s: string_reward(s, 4) for s in strings}
    assert df["unique_reward_calls"].iloc[-1] == len(distinct)
    top = sorted(distinct.values(), reverse=True)[:100]
    assert df["top100_reward"].iloc[-1] == pytest.approx(sum(top) / 100, abs=1e-6)  # fewer found: the rest count 0
    assert df["max_reward"].iloc[-1] == pytest.approx(top[0], abs=1e-6)
    assert df["modes_found"].iloc[-1] == task.oracle.modes.count() <= len(distinct)
    assert all(len(s) >= 3 for s in strings)
    before = task.oracle.calls
    x = trainer.sample(10, torch.Generator().manual_seed(1))
    assert x.shape == (10, 4) and task.oracle.calls == before
    assert ((env.lengths(x) >= 3) & (env.lengths(x) <= 4)).all()
    assert torch.equal(env.encode(env.decode(x)), x)


def test_mcmc_proposal_single_site_uniform() -> None:
    """Fixed length: a proposal changes exactly one token to a different token; from a fixed object every
    single-site substitution is equally likely (so q(x'|x) = q(x|x') = 1 / (len (V-1)), a symmetric proposal)."""
    env = Sequence("ACGT", 3)
    assert env.capabilities()["local_moves"] is None
    gen = torch.Generator().manual_seed(0)
    x = env.random_outcomes(500, gen)
    new, log_q, moved = env.propose(x, gen)
    assert ((new != x).sum(-1) == 1).all() and moved.all() and (log_q == 0).all()
    assert (env.lengths(new) == env.lengths(x)).all() and ((new < env.vocab) | (new == env.pad)).all()
    for start in ("ACG", "TCG"):
        n = 9000
        props = env.decode(env.propose(env.encode([start] * n), gen)[0])
        neighbours = {start[:p] + c + start[p + 1:] for p in range(3) for c in "ACGT"} - {start}
        counts = {s: props.count(s) for s in neighbours}
        assert set(props) == neighbours and len(neighbours) == 9
        assert all(abs(c - n / 9) < 0.15 * n / 9 for c in counts.values()), counts


def test_mcmc_proposal_with_insertions_and_deletions() -> None:
    """Variable length: a third each of substitutions, insertions (+log V) and deletions (-log V); a move
    that would leave [min_length, length] keeps x and is not counted as moved."""
    env = Sequence("ACGT", 3, 2)
    gen = torch.Generator().manual_seed(0)
    n = 9000
    new, log_q, moved = env.propose(env.encode(["AC"] * n), gen)
    props = env.decode(new)
    subs = {"AC"[:p] + c + "AC"[p + 1:] for p in range(2) for c in "ACGT"} - {"AC"}
    ins = {"AC"[:p] + c + "AC"[p:] for p in range(3) for c in "ACGT"}
    assert set(props) == subs | ins | {"AC"}  # deleting from a length-2 object would go below min_length
    stay = sum(p == "AC" for p in props)
    assert abs(stay - n / 3) < 0.1 * n / 3 and (~moved).sum() == stay
    grown = torch.tensor([len(p) == 3 for p in props])
    assert torch.allclose(log_q[grown], torch.tensor(math.log(4.0))) and (log_q[~grown] == 0).all()
    new, log_q, moved = env.propose(env.encode(["ACG"] * n), gen)
    shrunk = env.lengths(new) == 2
    assert set(env.decode(new[shrunk])) == {"CG", "AG", "AC"}
    assert torch.allclose(log_q[shrunk], torch.tensor(-math.log(4.0))) and (env.lengths(new) >= 2).all()


def test_mcmc_samples_the_target_over_varying_lengths() -> None:
    """Detailed balance with the Hastings corrections: long chains over all objects of 1..3 tokens of
    {A, C} reach the distribution proportional to R^exponent (total variation < 0.03)."""
    env = Sequence("AC", 3, 1)
    weights = dict(zip(env.decode(env.terminal_states()), ac_weights(env.decode(env.terminal_states()))))
    task = Task(env, {"reward": AC_WEIGHTS, "exponent": 2.0,
                      "modes": {"kind": "threshold", "threshold": 100.0, "min_distance": 1}})
    mcmc = MCMC(task, settings(MCMC, batch_size=4000), 0, CPU)
    gen = torch.Generator().manual_seed(1)
    for _ in range(60):
        mcmc.mh_step(task.log_reward, gen)
    counts = {}
    for _ in range(20):
        mcmc.mh_step(task.log_reward, gen)
        for s in env.decode(mcmc.x):
            counts[s] = counts.get(s, 0) + 1
    total = sum(w**2 for w in weights.values())
    tv = 0.5 * sum(abs(counts.get(s, 0) / (20 * 4000) - w**2 / total) for s, w in weights.items())
    assert tv < 0.03, tv
    # the same chains sampled from the exact target R^2 / Z of the task (listed: the space is enumerable)
    target = task.target[env.index(env.terminal_states())]
    assert torch.allclose(target, torch.tensor([w**2 / total for w in weights.values()]))


def test_mcmc_metropolis_acceptance() -> None:
    """A proposal is always accepted when the reward rises and never when it falls to (almost) zero."""
    env = Sequence("ACGT", 4)
    task, _ = make_task(env)
    mcmc = MCMC(task, settings(MCMC), 0, CPU)
    gen = torch.Generator().manual_seed(0)
    start = mcmc.x.clone()
    mcmc.mh_step(lambda x: torch.full((len(x),), -1e6), gen)
    assert torch.equal(mcmc.x, start) and mcmc.accepted == 0
    mcmc.mh_step(lambda x: torch.full((len(x),), 1e6), gen)
    assert ((mcmc.x != start).sum(-1) == 1).all() and mcmc.accepted == 8
    assert torch.equal(mcmc.log_r, torch.full((8,), 1e6))


def test_mcmc_runs_on_the_grid() -> None:
    """MCMC needs only local moves: on a grid its chains take unit steps (a step off the grid is no move and
    no reward call) and its curve has the shared columns, without an exact L1 (chains hold no table)."""
    env = HyperGrid(ndim=2, side=6)
    task = Task(env, {"reward": "corner", "params": {"r0": 0.1}, "modes": {"kind": "relative", "fraction": 0.5}})
    mcmc = MCMC(task, settings(MCMC, steps=8), 0, CPU)
    df = mcmc.run()
    assert df["step"].tolist() == [0, 1, 2, 4, 8]
    calls = df["reward_calls"].to_numpy()
    assert calls[0] == 8 and (np.diff(calls) <= 8 * np.diff(df["step"].to_numpy())).all()
    assert calls[-1] == task.oracle.calls and df["l1"].isna().all()
    assert df["modes_found"].iloc[-1] == task.oracle.modes.count() <= df["unique_reward_calls"].iloc[-1]
    x = mcmc.sample(20, torch.Generator().manual_seed(0))
    assert x.shape == (20, 2) and ((x >= 0) & (x < 6)).all() and task.oracle.calls == calls[-1]


class NoLocalMoves(HyperGrid):
    """A grid that declares no local moves (what a domain without ``propose`` says)."""

    def capabilities(self) -> dict[str, str | None]:
        return {**super().capabilities(), "local_moves": "this grid offers no local moves"}


def test_mcmc_needs_local_moves() -> None:
    env = NoLocalMoves(ndim=2, side=3)
    reason = MCMC.unsupported(env, settings(MCMC))
    assert reason == "needs the 'local_moves' capability: this grid offers no local moves"
    assert Scratch.unsupported(env, settings(Scratch)) is None and DQN.unsupported(env, settings(DQN)) is None
    with pytest.raises(ValueError, match="method 'mcmc' cannot run here: it needs the 'local_moves' capability"):
        MCMC(Task(env, {"reward": "corner"}), settings(MCMC), 0, CPU)


def test_replay_buffer_ring_and_state() -> None:
    """The ring buffer overwrites its oldest slots, reports size and pointer, and round-trips its state."""
    buf = ReplayBuffer(4, 2, CPU)
    s = torch.arange(12).view(6, 2)
    buf.add(s[:3], torch.tensor([0, 1, 2]), s[:3] + 100, torch.tensor([0.0, 1.0, 2.0]),
            torch.tensor([False, True, False]))
    assert (buf.size, buf.ptr) == (3, 3)
    buf.add(s[3:], torch.tensor([3, 4, 5]), s[3:] + 100, torch.tensor([3.0, 4.0, 5.0]),
            torch.tensor([True, False, True]))
    assert (buf.size, buf.ptr) == (4, 2)
    assert buf.a.tolist() == [4, 5, 2, 3] and buf.s[:, 0].tolist() == [8, 10, 4, 6]
    assert buf.next.tolist() == (buf.s + 100).tolist() and buf.done.tolist() == [False, True, False, True]
    other = ReplayBuffer(4, 2, CPU)
    other.load_state_dict(buf.state_dict())
    a = buf.sample(16, torch.Generator().manual_seed(0))
    b = other.sample(16, torch.Generator().manual_seed(0))
    assert all(torch.equal(u, v) for u, v in zip(a, b)) and set(a[1].tolist()) <= {2, 3, 4, 5}


@pytest.mark.parametrize("kind", ["dqn", "amortized_policy", "mcmc"])
def test_resume_is_exact(kind: str, tmp_path: Path) -> None:
    """12 steps in one go equal 8 steps, a checkpoint, and 4 more steps in a fresh method (same curve, but for
    the wall-clock seconds)."""
    env = Sequence("ACGT", 4, 3)
    full = make_trainer(kind, make_task(env)[0]).run(tmp_path / "a.pt")
    part = make_trainer(kind, make_task(env)[0])
    part.steps = 8
    first = part.run(tmp_path / "b.pt")
    assert first["step"].tolist() == [0, 1, 2, 4, 8]
    assert io.load_checkpoint(tmp_path / "b.pt")["step"] == 8
    task = make_task(env)[0]
    resumed = make_trainer(kind, task).run(tmp_path / "b.pt")
    assert resumed["step"].tolist() == [0, 1, 2, 4, 8, 12]
    pdt.assert_frame_equal(curve(full), curve(resumed))
    assert task.oracle.calls == resumed["reward_calls"].iloc[-1]


@pytest.mark.parametrize("flow", ["policy", "learned"])
def test_path_log_probs_by_hand(flow: str) -> None:
    """'policy': sum of log P_F(a_j | y[:j], y) for j = 0..upto (stop once s = y); 'learned': log F(s|y) + the
    last of those terms, with the model evaluated one prefix at a time."""
    env = Sequence("ACGT", 4, 2)
    model = random_model(env, 1)
    ys = ["GAT", "CATG", "TA", "GAT"]
    upto = [1, 4, 2, 0]
    got = path_log_probs(env, TrainedOCGFN(env, model), env.encode(ys), torch.tensor(upto), flow)
    for b, (y, k) in enumerate(zip(ys, upto)):
        yt = env.encode([y])
        terms, log_f = [], None
        for j in range(k + 1):
            s = env.encode([y[:j]])
            action = "ACGT".index(y[j]) if j < len(y) else env.stop
            with torch.no_grad():
                f, logits, _ = model(env.featurize(s), env.featurize(yt), env.is_initial(s))
            terms.append(masked_log_softmax(logits, env.forward_mask(s))[0, action].item())
            log_f = f.item()
        expected = sum(terms) if flow == "policy" else log_f + terms[-1]
        assert got[b].item() == pytest.approx(expected, abs=1e-5)
    assert got[3].item() == pytest.approx(terms[0], abs=1e-6)  # upto = 0: log F(s0|y) = 0 in both


# ---------------------------------------------------------------------------------- config checks


def sequence_env(params: dict, methods: list[str], tasks: tuple = ("bits",)) -> dict:
    return {"domain": "sequence", "params": params, "tasks": list(tasks), "methods": methods}


BITS_TASK = {"reward": "bitseq", "params": {"n_modes": 4}, "modes": {"kind": "reference", "delta": 0.125}}


@pytest.fixture
def seq_config(test_config: dict) -> dict:
    """test.yaml plus a bits2 x 4 append env with a bitseq task, and mcmc / dqn methods (grid6 keeps its own)."""
    test_config["envs"]["grid6"]["methods"] = ["exact", "amortized", "scratch"]
    test_config["finetune"]["methods"].update({"mcmc": {"kind": "mcmc"}, "dqn": {"kind": "dqn"}})
    test_config["tasks"]["bits"] = dict(BITS_TASK)
    test_config["envs"]["bits"] = sequence_env({"alphabet": "bits2", "length": 4},
                                               ["exact", "amortized", "scratch", "mcmc", "dqn"])
    return test_config


def raises_config(config: dict, *patterns: str) -> str:
    with pytest.raises(ConfigError) as info:
        check(config)
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)
    return str(info.value)


def test_valid_sequence_config_passes(seq_config: dict) -> None:
    """A sequence env with every method kind passes check(); the registry gives each method's class, which
    builds from its settings on the config's task."""
    check(seq_config)
    env = Sequence("bits2", 4)
    task = Task(env, seq_config["tasks"]["bits"])
    assert isinstance(task.oracle.modes, ReferenceModes) and task.oracle.modes.total == 4
    for method, cls in [("mcmc", MCMC), ("dqn", DQN), ("scratch", Scratch)]:
        entry, cfg = method_config(seq_config, method, "bits")
        assert type(cfg) is cls.Settings and (cfg.steps, cfg.batch_size) == (40, 16)
        assert type(method_class(entry["kind"])(task, cfg, 0, CPU)) is cls
    seq_config["envs"]["big"] = sequence_env({"alphabet": "bits2", "length": 40}, ["amortized", "scratch"])
    check(seq_config)  # amortized does not need an enumerable sequence space, only a tree


def test_mcmc_and_dqn_on_hypergrid(seq_config: dict) -> None:
    """MCMC runs wherever the environment has local moves (the grid's unit steps); DQN needs nothing more."""
    seq_config["envs"]["grid6"]["methods"] += ["mcmc", "dqn"]
    check(seq_config)


def test_amortized_on_prepend_append(seq_config: dict) -> None:
    """Off a tree, amortized on a prepend-or-append space takes the canonical-order Q (capability
    'completions') and F by DP over each outcome's ancestors (``flow: policy``) at any size; the exact
    conversion needs a listed space and is refused naming the method, the environment and why."""
    seq_config["envs"]["bits"]["params"]["mode"] = "prepend_append"
    seq_config["envs"]["bits"]["methods"] = ["amortized", "exact"]
    check(seq_config)  # 341 states: the canonical-order Q and the dense conversion
    seq_config["envs"]["bits"]["params"]["length"] = 8  # 87381 states: too many outcomes for a categorical Q
    seq_config["envs"]["bits"]["methods"] = ["amortized"]
    check(seq_config)
    seq_config["envs"]["bits"]["params"]["length"] = 40  # 4^40 objects: no int64 index, hashed ancestors
    check(seq_config)
    seq_config["finetune"]["methods"]["amortized"]["flow"] = "learned"
    check(seq_config)
    seq_config["envs"]["bits"]["methods"] = ["exact"]
    raises_config(seq_config, "method 'exact' (kind exact) cannot run on environment 'bits': it needs the "
                  "'enumerable' capability")
    seq_config["envs"]["bits"]["methods"] = ["scratch", "mcmc", "dqn"]
    check(seq_config)


def test_exact_on_non_enumerable(seq_config: dict) -> None:
    """exact on protein^50 is refused for not being enumerable."""
    seq_config["envs"]["bits"] = sequence_env({"alphabet": "protein", "length": 50}, ["exact"])
    raises_config(seq_config, "envs.bits.methods: method 'exact' (kind exact) cannot run on environment 'bits': "
                  "it needs the 'enumerable' capability: 20^50 objects is more than 4194304 states to list")


def test_sequence_task_modes(seq_config: dict) -> None:
    """A task without a modes entry counts relative modes (R >= max R / 2), which needs an enumerable space;
    every refusal names tasks.<name>.modes and the environment."""
    del seq_config["tasks"]["bits"]["modes"]
    check(seq_config)  # bits2 x 4 is enumerable
    task = Task(Sequence("bits2", 4), seq_config["tasks"]["bits"])
    assert isinstance(task.oracle.modes, ExactModes)
    assert task.oracle.modes.total == int((task.landscape >= task.landscape.max() / 2).sum()) > 0
    seq_config["envs"]["bits"]["params"]["length"] = 40
    seq_config["envs"]["bits"]["methods"] = ["scratch"]
    raises_config(seq_config, "tasks.bits.modes.kind: 'relative' needs the 'enumerable' capability",
                  "(environment 'bits')")
    seq_config["tasks"]["bits"]["modes"] = {"kind": "local_optima"}
    raises_config(seq_config, "tasks.bits.modes.kind: 'local_optima' needs the 'enumerable' capability")
    seq_config["tasks"]["bits"]["modes"] = {"kind": "nonsense"}
    raises_config(seq_config, "tasks.bits.modes.kind: expected one of", "got 'nonsense' (environment 'bits')")
    seq_config["tasks"]["bits"]["modes"] = {"kind": "threshold"}
    raises_config(seq_config, "tasks.bits.modes.threshold: expected a number")
    seq_config["tasks"]["bits"] = {"reward": "rna_binding", "modes": {"kind": "reference"}}
    raises_config(seq_config, "tasks.bits.modes.kind: 'reference' needs a reward with its own mode set")


def test_matched_to_only_on_scratch(seq_config: dict) -> None:
    """matched_to on a non-scratch method is a ConfigError naming the key."""
    seq_config["finetune"]["methods"]["mcmc"]["matched_to"] = "full"
    raises_config(seq_config, "finetune.methods.mcmc.matched_to", "scratch")


def test_matched_to_adds_steps(seq_config: dict) -> None:
    """matched_to adds ceil(2 * pretrain steps * pretrain batch / batch) steps, with the env's overrides."""
    seq_config["finetune"]["methods"]["matched"] = {"kind": "scratch", "matched_to": "no_ot",
                                                    "settings": {"batch_size": 7}}
    _, cfg = method_config(seq_config, "matched")
    assert cfg.steps == 40 + math.ceil(2 * 60 * 16 / 7) == 40 + 275
    seq_config["envs"]["bits"]["pretrain"] = {"steps": 10, "batch_size": 5}
    _, cfg = method_config(seq_config, "matched", "bits")
    assert cfg.steps == 40 + 15  # ceil(100 / 7)
    seq_config["envs"]["bits"]["methods"].append("matched")
    check(seq_config)
