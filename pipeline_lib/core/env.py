"""The batched environment protocol every domain implements, and the capabilities it declares.

States are tensors with a leading batch dimension; every method acts on a whole batch at once, so
training never loops over individual states in Python. The last forward action is always ``stop``:
taking it from state ``s`` ends the trajectory with terminal object ``x = s``.

Beside the MDP, an environment says what else it can do (``capabilities``, computed per instance)
and describes its objects (keys, table columns, diversity, what a reward plug-in receives). Methods,
mode definitions and stages ask these questions, never the domain's name.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

# The capabilities a method or a mode definition can require; each environment answers for itself.
ENUMERABLE = "enumerable"  # all_states / terminal_states / index / level: exact targets, exact L1/KL, DP
TREE = "tree"  # one trajectory per object: path(); tree conversion, autoregressive Q
LOCAL_MOVES = "local_moves"  # propose(): a local proposal with its Hastings correction (MCMC)
NEIGHBOURS = "neighbours"  # neighbours(): single-site substitutions (local-optimum modes)
MOLECULES = "molecules"  # smiles(): canonical SMILES (Tanimoto modes, RDKit metrics)
# ancestors(): the states that can still produce each outcome and the moves between them (F by DP over y's
# sub-DAG: the sparse exact conversion, the amortized predictor's flow: policy on a DAG)
ANCESTORS = "ancestors"
# completion_mask / completion_phase / completion_paths: a canonical order in which to complete a state into an
# outcome, one trajectory per way the state sits inside it (the amortized predictor's exact Q on a DAG)
COMPLETIONS = "completions"
CAPABILITIES = (ENUMERABLE, TREE, LOCAL_MOVES, NEIGHBOURS, MOLECULES, ANCESTORS, COMPLETIONS)
# the methods an environment that declares a capability must have (``domains.make_env`` checks them)
CAPABILITY_METHODS = {ENUMERABLE: ("all_states", "terminal_states", "index"), TREE: ("path_step",),
                      LOCAL_MOVES: ("propose",), NEIGHBOURS: ("neighbours",), MOLECULES: ("smiles",),
                      ANCESTORS: ("ancestors",),
                      COMPLETIONS: ("completion_mask", "completion_phase", "completion_paths")}


# what a domain's optional ``headline`` may name: the figure its summary section leads with (plan.headline_figure)
HEADLINES = ("search", "l1")

# the columns the pipeline's tables of objects (samples, targets, data sets) label them with: ``describe`` keys must
# differ, else a label is overwritten in silence
LABEL_COLUMNS = ("env", "task", "method", "seed", "kind", "pretrained", "variant", "split", "reward", "is_mode", "step")


def described(describe: Callable[[torch.Tensor], dict], states: torch.Tensor, i: int) -> dict[str, Any]:
    """``describe``'s row of ``states[i]`` (``env.describe``), numpy scalars as plain numbers: an object named in a
    message."""
    return {k: v[0].item() if hasattr(v[0], "item") else v[0] for k, v in describe(states[i:i + 1]).items()}


@runtime_checkable
class Environment(Protocol):
    """A discrete DAG whose terminal objects are reached by a ``stop`` action."""

    device: torch.device  # where its tensors live (generators and tables are made there)
    n_actions: int  # forward actions, the last one is stop
    n_backward_actions: int
    max_length: int  # most transitions in a trajectory, stop included
    feature_dim: int
    stop: int

    def capabilities(self) -> dict[str, str | None]:
        """For every name in CAPABILITIES: None where this instance has it, else why not."""

    def initial_states(self, n: int) -> torch.Tensor:
        """``n`` copies of s0."""

    def forward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Bool [B, n_actions]: which forward actions are valid."""

    def backward_mask(self, states: torch.Tensor) -> torch.Tensor:
        """Bool [B, n_backward_actions]: which parents exist (all False at s0)."""

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Children of ``states`` under non-stop ``actions``; stop rows are returned unchanged."""

    def backward_action(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """The backward action that undoes forward ``actions`` taken from ``states``."""

    def featurize(self, states: torch.Tensor) -> torch.Tensor:
        """Float [B, feature_dim] network input; also used to encode outcomes."""

    def is_initial(self, states: torch.Tensor) -> torch.Tensor:
        """Bool [B]."""

    def level(self, states: torch.Tensor) -> torch.Tensor:
        """Long [B]: a rank that every move raises, so parents have a smaller level (the number of transitions
        from s0 where all paths to a state have one length; on other DAGs e.g. a position): the dynamic
        programmes walk the DAG level by level."""

    def can_reach(self, states: torch.Tensor, outcomes: torch.Tensor) -> torch.Tensor:
        """Bool [...]: terminal ``outcomes`` can still be produced from ``states``, over any leading dimensions
        (the exact tables call it on [S, Y, ...] pairs): reduce only the state's own dimensions."""

    def same(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Bool [...]: equality of states, over any leading dimensions as ``can_reach``."""

    def random_outcomes(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` terminal objects drawn at random (evaluation targets, MCMC starts)."""

    # --- describing objects (every domain) ---
    def objects(self, states: torch.Tensor) -> Any:
        """What a reward plug-in receives for a batch of terminal objects."""

    def object_keys(self, states: torch.Tensor) -> list:
        """One hashable key per object: equal keys are the same object (counted once by the oracle)."""

    def distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pairwise distances [A, B] between two sets of objects (threshold modes, diversity)."""

    def diversity(self, states: torch.Tensor) -> float:
        """Mean pairwise distance of a set of objects (0 for fewer than two)."""

    def describe(self, states: torch.Tensor) -> dict[str, Any]:
        """Table columns that identify each object (samples and targets parquet)."""

    def parse(self, table: Any) -> torch.Tensor:
        """The objects of a table written with ``describe`` columns."""

    def sample_metrics(self, states: torch.Tensor, top: torch.Tensor) -> dict[str, float]:
        """Domain-specific metrics of a set of final samples (``top``: its best distinct objects)."""

    figure_kinds: tuple[str, ...]  # figures the report draws for this domain ("heatmap", "molecules")
    per_task_report: bool  # report tables list each task apart (objectives on different scales)
    # Where ENUMERABLE: ``n_states`` (= len(all_states())), ``all_states()`` in ``index`` order with s0 at index 0
    # (the dynamic programmes start there) and ``terminal_states()``. Optional: ``headline`` ("search", or "l1"
    # where the summary should lead with exact L1 curves: plan.py), ``indexable`` (an exact int64 ``index`` even
    # where the space is too large to list: ocgfn/tables.py).
    # Optional methods, each serving the capability or setting named (their shapes, as the methods call them):
    #   propose(x, generator) -> (new [B, ...], log q(x|new) - log q(new|x) [B], moved bool [B])  LOCAL_MOVES
    #   neighbours(states) -> (near [B, K, ...], valid bool [B, K]; an invalid entry repeats the state)  NEIGHBOURS
    #   path_step(y, b, j) -> (state at depth j of outcome y[b]'s one trajectory, the action taken there; b and j
    #     1-D long tensors of one length, each pair one query)  TREE
    #   pair_features(states, outcomes) -> float [B, pair_dim], with the int attribute pair_dim  (conditioning: pairs)
    #   ancestors(outcomes [Y, ...]) -> (rows [P], states [P, ...], child [P, n_actions]): each (outcome, state that
    #     can still produce it) pair once, s0 included, sorted by (row, index(state)); child: the pair each valid move
    #     leads to inside the same outcome's sub-DAG, -1 for stop, invalid moves and moves that leave it  ANCESTORS
    #   completion_mask / completion_phase / completion_paths: COMPLETIONS (see domains/sequence/env.py).

    def domain_rewards(self) -> Any:
        """The domain's rewards module: REWARDS, bind, data_files, fetch, reference_modes."""

    def bind_reward(self, name: str, params: dict[str, Any], resources: str) -> Any:
        """A built-in reward of this domain bound to its parameters; KeyError if it has no such reward."""

    def reward_names(self) -> list[str]:
        """The built-in rewards of this domain."""


class DomainRewards:
    """The reward half of the protocol, shared by every domain: a class names its rewards module
    (``rewards_module``, imported on first use so a grid job never loads RDKit)."""

    rewards_module: str

    def domain_rewards(self) -> Any:
        return rewards_module(type(self))

    def reward_names(self) -> list[str]:
        return sorted(self.domain_rewards().REWARDS)

    def bind_reward(self, name: str, params: dict[str, Any], resources: str) -> Any:
        return self.domain_rewards().bind(name, params, self, resources)


# what a domain's rewards module defines (README, Extending): its built-in rewards, and how to bind and fetch them
REWARDS_MODULE_NAMES = ("REWARDS", "bind", "data_files", "fetch", "reference_modes")


def rewards_module(cls: type) -> Any:
    """The rewards module an environment class names (``rewards_module``), imported, with every name of
    REWARDS_MODULE_NAMES: a misspelt module or a missing name is a ValueError naming the class, not a bare
    traceback from the workflow."""
    name = getattr(cls, "rewards_module", None)
    if not isinstance(name, str):
        raise ValueError(f"{cls.__name__} has no rewards_module: set it to the module of the domain's rewards file, "
                         f"e.g. 'pipeline_lib.domains.<name>.rewards' (README, Extending)")
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        raise ValueError(f"{cls.__name__}.rewards_module {name!r} does not import ({type(err).__name__}: {err}); it "
                         f"names the domain's rewards file as a module, e.g. 'pipeline_lib.domains.<name>.rewards'"
                         ) from err
    absent = [n for n in REWARDS_MODULE_NAMES if not hasattr(module, n)]
    if absent:
        raise ValueError(f"{cls.__name__}.rewards_module {name!r} lacks {absent}; a domain's rewards module defines "
                         f"{list(REWARDS_MODULE_NAMES)} (README, Extending)")
    return module


def missing(env: Environment, needs: tuple[str, ...] | list[str]) -> str | None:
    """Why ``env`` cannot serve something that needs ``needs`` (the first missing capability), or None."""
    have = env.capabilities()
    for name in needs:
        if name not in CAPABILITIES:
            raise ValueError(f"unknown capability {name!r}; expected one of {CAPABILITIES}")
        if name not in have:
            raise ValueError(f"{type(env).__name__}.capabilities() lacks {name!r}: it must answer for every name in "
                             f"CAPABILITIES (None where it has one, else why not)")
        if have[name] is not None:
            return f"needs the {name!r} capability: {have[name]}"
    return None


def row_keys(x: torch.Tensor) -> list[bytes]:
    """One hashable key per integer row (states whose rows are equal are the same object): int16 where every value
    fits (a quarter of int64's bytes to hash), else int64, so no two values share a key."""
    arr = x.cpu().numpy()
    small = arr.size == 0 or (arr.min() >= np.iinfo(np.int16).min and arr.max() <= np.iinfo(np.int16).max)
    arr = np.ascontiguousarray(arr.astype(np.int16 if small else np.int64))
    return [row.tobytes() for row in arr.reshape(len(arr), -1)]


def mean_pairwise(distance: torch.Tensor) -> float:
    """Mean off-diagonal entry of a square distance matrix (0 for fewer than two objects)."""
    n = len(distance)
    if n < 2:
        return 0.0
    return float(distance.float().sum() / (n * (n - 1)))
