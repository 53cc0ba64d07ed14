"""The protocol check of a domain (domains/contract.py): each mistake a new domain can make is named before any job
meets it, and every built-in domain passes."""
from __future__ import annotations

import pytest
import torch

from pipeline_lib.config import ConfigError, check
from pipeline_lib.domains import DOMAINS, domain_rewards, make_env
from pipeline_lib.domains.contract import ContractError, check_contract, check_members
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.domains.subset.env import Subset


@pytest.mark.parametrize("domain, params", [
    ("hypergrid", {"ndim": 2, "side": 5}), ("hypergrid", {"ndim": 3, "side": 3}),
    ("sequence", {"alphabet": "dna", "length": 4}), ("sequence", {"alphabet": "bits2", "length": 5, "min_length": 2}),
    ("sequence", {"alphabet": "bits2", "length": 5, "mode": "prepend_append", "pairs": "summary"}),
    ("subset", {"n": 6, "max_size": 3}), ("molecule", {"length": 6, "min_length": 2}),
])
def test_every_built_in_domain_keeps_the_protocol(domain: str, params: dict) -> None:
    check_contract(make_env(domain, params))


class _PathOffByOne(Sequence):
    """Stops one token early: the tree conversion would follow other trajectories than the environment's."""

    def path_step(self, y, b, j):
        prefix, action = super().path_step(y, b, j)
        early = j == self.lengths(y)[b] - 1
        return prefix, torch.where(early, torch.full_like(action, self.stop), action)


class _WideFeatures(HyperGrid):
    def featurize(self, states):
        return torch.cat([super().featurize(states), torch.ones(len(states), 1)], 1)


class _ReversedIndex(HyperGrid):
    def index(self, states):
        return self.n_states - 1 - super().index(states)


class _WrongBackAction(HyperGrid):
    def backward_action(self, states, actions):
        return (actions + 1) % self.ndim


class _FlatLevel(HyperGrid):
    def level(self, states):
        return torch.zeros(len(states), dtype=torch.long)


class _TwoValuedPropose(HyperGrid):
    def propose(self, x, generator):
        return super().propose(x, generator)[:2]


class _FlatNeighbours(HyperGrid):
    def neighbours(self, states):
        near, valid = super().neighbours(states)
        return near.flatten(0, 1), valid


class _StopMoves(HyperGrid):
    def step(self, states, actions):
        return states + 1 if bool((actions == self.stop).all()) else super().step(states, actions)


class _FlatCanReach(HyperGrid):
    """Reduces every dimension but the first: right on a batch of states, wrong on the exact tables' [S, Y] pairs."""

    def can_reach(self, states, outcomes):
        return (states <= outcomes).flatten(1).all(1)


class _DoubleFeatures(HyperGrid):
    def featurize(self, states):
        return super().featurize(states).double()


class _Stuck(HyperGrid):
    """No action at all from the far corner (stop forbidden there)."""

    def forward_mask(self, states):
        mask = super().forward_mask(states)
        return mask & ~(states == self.side - 1).all(-1, keepdim=True)


class _LooseCanReach(HyperGrid):
    """Compares totals only: true on y's paths, but also where a coordinate has passed y's."""

    def can_reach(self, states, outcomes):
        return states.sum(-1) <= outcomes.sum(-1)


class _MissingAncestors(Sequence):
    """Leaves out the prefixes of length 2 (and the moves into them)."""

    def ancestors(self, outcomes):
        rows, states, child = super().ancestors(outcomes)
        keep = self.lengths(states) != 2
        new = torch.cumsum(keep, 0) - 1
        child = torch.where(child >= 0, torch.where(keep[child.clamp(min=0)], new[child.clamp(min=0)], -1), -1)
        return rows[keep], states[keep], child[keep]


class _UnsortedAncestors(Sequence):
    """The right pairs in reverse order: every lookup by searchsorted would miss."""

    def ancestors(self, outcomes):
        rows, states, child = super().ancestors(outcomes)
        last = len(rows) - 1
        return rows.flip(0), states.flip(0), torch.where(child >= 0, last - child, -1).flip(0)


class _ChildlessAncestors(Sequence):
    def ancestors(self, outcomes):
        rows, states, child = super().ancestors(outcomes)
        return rows, states, torch.full_like(child, -1)


class _Raising(Subset):
    def random_outcomes(self, n, generator=None):
        raise NotImplementedError("random_outcomes")


class _NoStopAtOutcomes(Subset):
    """Draws outcomes below ``min_size``, where the masks forbid stop: the control's walk would fail, and can_reach
    take the blame."""

    def random_outcomes(self, n, generator=None):
        return torch.zeros(n, self.n, dtype=torch.long)


class _HighLevel(HyperGrid):
    """A rank above max_length: the length report counts levels 0 to max_length."""

    def level(self, states):
        return super().level(states) * 10


@pytest.mark.parametrize("cls, params, expected", [
    (_PathOffByOne, {"alphabet": "dna", "length": 4}, "path_step disagrees with its moves"),
    (_WideFeatures, {"ndim": 2, "side": 4}, "featurize(initial_states(2)) gives torch.float32 (2, 9); expected "
                                            "torch.float32 (2, 8) (its feature_dim)"),
    (_DoubleFeatures, {"ndim": 2, "side": 4}, "gives torch.float64 (2, 8); expected torch.float32 (2, 8)"),
    (_Stuck, {"ndim": 1, "side": 2}, "a uniform rollout met a state where forward_mask allows no action"),
    (_ReversedIndex, {"ndim": 2, "side": 4}, "index(all_states()) must be 0, 1, ..., n_states - 1 in order"),
    (_WrongBackAction, {"ndim": 2, "side": 4}, "which backward_mask of its child"),
    (_FlatLevel, {"ndim": 2, "side": 4}, "level must rise with every move"),
    (_TwoValuedPropose, {"ndim": 2, "side": 4}, "propose(x [16, ...], generator) gives [(16, 2), (16,)]; expected"),
    (_FlatNeighbours, {"ndim": 2, "side": 4}, "neighbours(states [16, ...]) gives (64, 2)"),
    (_StopMoves, {"ndim": 2, "side": 4}, "step must return a state unchanged under stop"),
    (_FlatCanReach, {"ndim": 2, "side": 4}, "can_reach(states [8, 8, ...], outcomes [8, 8, ...]) gives (8,) other "
                                              "than on the same pairs laid flat"),
    (_LooseCanReach, {"ndim": 2, "side": 4}, "following can_reach from s0 towards"),
    (_MissingAncestors, {"alphabet": "dna", "length": 3}, "ancestors on terminals of uniform rollouts: expected, for "
                                                          "each outcome in turn, every state from which can_reach"),
    (_UnsortedAncestors, {"alphabet": "dna", "length": 3}, "in another order or set"),
    (_ChildlessAncestors, {"alphabet": "dna", "length": 3}, "(each valid move's pair inside the sub-DAG"),
    (_NoStopAtOutcomes, {"n": 5, "min_size": 2}, "random_outcomes(16) include {'items': ''}, where forward_mask does "
                                                 "not allow stop"),
    (_HighLevel, {"ndim": 2, "side": 4}, "at level 10, above max_length = 7"),
    (_Raising, {"n": 5}, "probing the Environment protocol on a few objects raised NotImplementedError: "
                         "random_outcomes (in random_outcomes, "),
])
def test_a_domain_that_breaks_the_protocol_is_named(cls: type, params: dict, expected: str) -> None:
    with pytest.raises(ContractError) as info:
        check_contract(cls(**params))
    assert expected in str(info.value) and cls.__name__ in str(info.value), str(info.value)


class _Without:
    """An environment with some members taken away."""

    def __init__(self, env, *names: str) -> None:
        self._env, self._names = env, names

    def __getattr__(self, name: str):
        if name in self._names:
            raise AttributeError(name)
        return getattr(self._env, name)


class _NoneDescribe(HyperGrid):
    describe = None  # present, but not a method


def test_every_missing_member_is_named_at_once() -> None:
    with pytest.raises(ContractError, match=r"lacks \['describe', 'level'\] of the Environment protocol"):
        check_members(_Without(HyperGrid(2, 4), "level", "describe"))
    with pytest.raises(ContractError, match=r"_NoneDescribe lacks \['describe'\]"):
        check_members(_NoneDescribe(2, 4))


class _NoMembers(HyperGrid):
    """The state of a new domain half written: make_env names what is missing instead of failing on it."""

    def __getattribute__(self, name: str):
        if name in ("capabilities", "sample_metrics"):
            raise AttributeError(name)
        return super().__getattribute__(name)


class _RewardsWithoutFetch(HyperGrid):
    rewards_module = "pipeline_lib.core.losses"  # a module, but not a rewards module


def test_make_env_and_the_config_check_name_the_domains_mistakes(test_config: dict, monkeypatch) -> None:
    monkeypatch.setitem(DOMAINS, "half", f"{__name__}:_NoMembers")
    with pytest.raises(ValueError, match=r"_NoMembers lacks \['capabilities', 'sample_metrics'\]"):
        make_env("half", {"ndim": 2, "side": 4})
    monkeypatch.setitem(DOMAINS, "typo", f"{__name__}:_PathOfByOne")
    with pytest.raises(ValueError, match=r"DOMAINS\['typo'\] = '[\w.]+:_PathOfByOne' names no class \(AttributeError"):
        make_env("typo", {})
    monkeypatch.setitem(DOMAINS, "nofetch", f"{__name__}:_RewardsWithoutFetch")
    with pytest.raises(ValueError, match=r"rewards_module 'pipeline_lib.core.losses' lacks \['REWARDS', 'bind', "
                                         r"'data_files', 'fetch', 'reference_modes'\]"):
        domain_rewards("nofetch")  # what the prepare rule asks, by the class's rewards_module
    test_config["envs"]["grid6"]["domain"] = "nofetch"
    with pytest.raises(ConfigError, match=r"envs.grid6: _RewardsWithoutFetch.rewards_module"):
        check(test_config)
    monkeypatch.setitem(DOMAINS, "offbyone", f"{__name__}:_PathOffByOne")
    test_config["envs"]["grid6"] = {"domain": "offbyone", "params": {"alphabet": "dna", "length": 3}, "tasks": []}
    with pytest.raises(ConfigError, match=r"envs.grid6: _PathOffByOne.path_step disagrees with its moves"):
        check(test_config)


def test_the_contract_runs_alone_on_one_domain_instance() -> None:
    """``python -m pipeline_lib.domains DOMAIN PARAMS``: a new domain's probes without writing a config; an answer the
    probes refuse, or bad parameters, exit non-zero with the message."""
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline_lib.domains", *args], capture_output=True, text=True)

    good = run("hypergrid", "{ndim: 2, side: 5}")
    assert good.returncode == 0 and "contract holds" in good.stdout, good.stderr
    bad = run("hypergrid", "{ndim: 0, side: 5}")
    assert bad.returncode == 1 and "hypergrid needs ndim >= 1" in bad.stderr
    assert run("nothere").returncode == 1 and "unknown domain 'nothere'" in run("nothere").stderr
