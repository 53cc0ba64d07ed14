"""Does an environment keep the protocol of ``core/env.py``? Probed on a few objects before any job starts.

A new domain that lacks a method, gives a feature width other than ``feature_dim`` or returns a wrong shape would
otherwise fail inside every job with a bare traceback, and one whose ``path_step`` or ``index`` disagrees with its
own moves would give wrong "exact" results in silence. ``check_contract`` rolls out a few uniform trajectories
with the environment's own masks and checks what every method answers on them; the errors name the method and
what was expected (``config.check`` reports them as ``envs.NAME``)."""
from __future__ import annotations

import traceback

import torch

from pipeline_lib.core.env import ANCESTORS, ENUMERABLE, LOCAL_MOVES, NEIGHBOURS, TREE, Environment, described
from pipeline_lib.core.exact import listed_states
from pipeline_lib.core.nets import masked_log_softmax
from pipeline_lib.core.rollout import rollout
from pipeline_lib.ocgfn.sources import control_rollout

PROBES = 16  # uniform trajectories rolled out, and random outcomes drawn, per check
LISTED_STATES = 1 << 20  # the most states an enumerable space is listed for (its index order, a tree's parents)
# the protocol's methods and attributes, read off the class so the lists cannot drift from it
METHODS = tuple(sorted(name for name, value in vars(Environment).items()
                       if callable(value) and not name.startswith("_")))
ATTRIBUTES = tuple(sorted(Environment.__annotations__))
MEMBERS = tuple(sorted(METHODS + ATTRIBUTES))
PAIRS = 8  # states and objects whose pairs probe the methods that work over leading dimensions
ANCESTOR_PROBES = 4  # outcomes whose sub-DAG (ancestors) is checked against every listed state


class ContractError(ValueError):
    """An environment that breaks the protocol, named with what was expected."""


def check_members(env) -> None:
    """Raise ContractError naming every member of the protocol ``env`` lacks (``make_env`` asks, for every job)."""
    absent = [m for m in MEMBERS if not (callable(getattr(env, m, None)) if m in METHODS else hasattr(env, m))]
    if absent:
        raise ContractError(f"{type(env).__name__} lacks {absent} of the Environment protocol (core/env.py; README, "
                            f"Extending)")


def check_contract(env) -> None:
    """Raise ContractError where ``env`` lacks a member of the protocol or answers a probe wrongly; whatever else a
    probe raises is named with the function and line it came from."""
    check_members(env)
    try:
        _probe(env)
    except ContractError:
        raise
    except Exception as err:  # noqa: BLE001 - a domain's own bug, reported as such before any job meets it
        frame = traceback.extract_tb(err.__traceback__)[-1]
        raise ContractError(f"{type(env).__name__}: probing the Environment protocol on a few objects raised "
                            f"{type(err).__name__}: {err} (in {frame.name}, {frame.filename}:{frame.lineno})"
                            ) from err


def _probe(env) -> None:
    name = type(env).__name__
    if env.stop != env.n_actions - 1:
        raise ContractError(f"{name}.stop = {env.stop}: the last forward action must be stop (n_actions - 1 = "
                            f"{env.n_actions - 1})")
    s0 = env.initial_states(2)
    _shape(name, "featurize(initial_states(2))", env.featurize(s0), (2, env.feature_dim), "feature_dim", torch.float32)
    _shape(name, "forward_mask(initial_states(2))", env.forward_mask(s0), (2, env.n_actions), "n_actions", torch.bool)
    back = env.backward_mask(s0)
    _shape(name, "backward_mask(initial_states(2))", back, (2, env.n_backward_actions), "n_backward_actions",
           torch.bool)
    if bool(back.any()):
        raise ContractError(f"{name}.backward_mask(initial_states(2)) must be all False (s0 has no parent)")
    if not bool(env.is_initial(s0).all()):
        raise ContractError(f"{name}.is_initial(initial_states(2)) must be True")
    generator = torch.Generator(env.device).manual_seed(0)
    try:
        traj = rollout(env, lambda s, rows, mask: masked_log_softmax(torch.zeros(mask.shape, device=mask.device),
                                                                     mask), PROBES, generator=generator)
    except FloatingPointError as err:  # what the rollout says of a row without a valid action
        raise ContractError(f"{name}: a uniform rollout met a state where forward_mask allows no action; every state "
                            f"must allow stop or a move ({err})") from err
    _moves(env, traj)
    listed = _listed(env)
    _leading_dimensions(env, traj.transitions()[2], traj.terminals, generator)
    for label, objects in (("terminals of uniform rollouts", traj.terminals),
                           (f"random_outcomes({PROBES})", env.random_outcomes(PROBES, generator))):
        _objects(env, label, objects, generator)
        _reaching(env, label, objects, generator)
        if listed is not None:
            _ancestors(env, label, objects[:ANCESTOR_PROBES], listed)


def _shape(name: str, call: str, value: torch.Tensor, shape: tuple[int, ...], attribute: str, dtype: torch.dtype
           ) -> None:
    """``value`` has ``shape`` and ``dtype``: float32 for network inputs (the networks' dtype), bool for masks."""
    if tuple(value.shape) != shape or value.dtype != dtype:
        raise ContractError(f"{name}.{call} gives {value.dtype} {tuple(value.shape)}; expected {dtype} {shape} (its "
                            f"{attribute})")


def _moves(env, traj) -> None:
    """Every move of the rollouts: its child has the move's backward action among its parents and a higher
    level; a stop keeps the state."""
    name = type(env).__name__
    t, b, state, action = traj.transitions()
    stop = action == env.stop
    if not bool(env.same(env.step(state[stop], action[stop]), state[stop]).all()):
        raise ContractError(f"{name}.step must return a state unchanged under stop")
    state, child, action = state[~stop], traj.states[t + 1, b][~stop], action[~stop]
    if not len(action):
        return
    back = env.backward_action(state, action)
    inside = (back >= 0) & (back < env.n_backward_actions)
    allowed = inside & env.backward_mask(child).gather(1, back.clamp(0, env.n_backward_actions - 1)[:, None])[:, 0]
    if not bool(allowed.all()):
        i = int((~allowed).nonzero()[0, 0])
        raise ContractError(f"{name}: the move {int(action[i])} from {described(env.describe, state, i)} has "
                            f"backward_action {int(back[i])}, which backward_mask of its child "
                            f"{described(env.describe, child, i)} does not allow")
    rises = env.level(child) > env.level(state)
    if not bool(rises.all()):
        i = int((~rises).nonzero()[0, 0])
        raise ContractError(f"{name}.level must rise with every move: {described(env.describe, state, i)} -> "
                            f"{described(env.describe, child, i)} (move {int(action[i])})")


def _leading_dimensions(env, states: torch.Tensor, objects: torch.Tensor, generator: torch.Generator) -> None:
    """``can_reach`` and ``same`` on [k, k, ...] pairs (as the exact tables call them) answer as on the k * k pairs
    laid flat: they reduce only the state's own dimensions."""
    name = type(env).__name__
    pick = torch.randperm(len(states), generator=generator, device=states.device)[:PAIRS]
    a, y = states[pick], objects[:PAIRS]
    grid = (len(a), len(y))
    left, right = a[:, None].expand(*grid, *a.shape[1:]), y[None].expand(*grid, *y.shape[1:])
    for method in ("can_reach", "same"):
        fn = getattr(env, method)
        paired, flat = fn(left, right), fn(left.reshape(-1, *a.shape[1:]), right.reshape(-1, *y.shape[1:]))
        if tuple(paired.shape) != grid or not torch.equal(paired.reshape(-1), flat):
            raise ContractError(f"{name}.{method}(states [{grid[0]}, {grid[1]}, ...], outcomes [{grid[0]}, {grid[1]}, "
                                f"...]) gives {tuple(paired.shape)}{'' if tuple(paired.shape) != grid else ' values'} "
                                f"other than on the same pairs laid flat; it must work over any leading dimensions, "
                                f"reducing only the state's own (the exact tables call it on [S, Y, ...] pairs)")


def _objects(env, label: str, y: torch.Tensor, generator: torch.Generator) -> None:
    """What the methods ask of terminal objects: s0 reaches them, each is the same as itself, and the shapes of the
    optional methods where the environment has them; on a tree, each object's one path (``path_step``)."""
    name, n = type(env).__name__, len(y)
    stops = env.forward_mask(y)[:, env.stop]
    if not bool(stops.all()):  # else the control's walk towards y fails, and can_reach would take the blame
        i = int((~stops).nonzero()[0, 0])
        raise ContractError(f"{name}: {label} include {described(env.describe, y, i)}, where forward_mask does not "
                            f"allow stop: every terminal object (random_outcomes' included) must be a state where "
                            f"stop is valid")
    levels = env.level(y)
    if bool((levels > env.max_length).any()):  # the length report counts levels 0 to max_length
        i = int((levels > env.max_length).nonzero()[0, 0])
        raise ContractError(f"{name}: {label} include {described(env.describe, y, i)} at level {int(levels[i])}, "
                            f"above max_length = {env.max_length}: every object is built within max_length "
                            f"transitions (the stop included), and its level may not exceed that")
    s0 = env.initial_states(n)
    for call, value in (("can_reach(initial_states(n), y)", env.can_reach(s0, y)), ("same(y, y)", env.same(y, y))):
        if tuple(value.shape) != (n,) or not bool(value.all()):
            raise ContractError(f"{name}.{call} on {label} gives {value.tolist()}; expected {n} times True")
    have = env.capabilities()
    if getattr(env, "pair_dim", 0):
        _shape(name, f"pair_features(states, outcomes) on {label}", env.pair_features(s0, y), (n, env.pair_dim),
               "pair_dim", torch.float32)
    if have[LOCAL_MOVES] is None:
        out = env.propose(y, generator)
        if not (isinstance(out, tuple) and len(out) == 3 and tuple(out[0].shape) == tuple(y.shape)
                and tuple(out[1].shape) == (n,) and tuple(out[2].shape) == (n,) and out[2].dtype == torch.bool):
            got = [tuple(o.shape) for o in out] if isinstance(out, tuple) else type(out).__name__
            raise ContractError(f"{name}.propose(x [{n}, ...], generator) gives {got}; expected (new like x, "
                                f"log q correction [{n}], moved bool [{n}])")
    if have[NEIGHBOURS] is None:
        near, valid = env.neighbours(y)
        if near.shape[0] != n or tuple(near.shape[2:]) != tuple(y.shape[1:]) or tuple(valid.shape) != tuple(
                near.shape[:2]) or valid.dtype != torch.bool:
            raise ContractError(f"{name}.neighbours(states [{n}, ...]) gives {tuple(near.shape)} and "
                                f"{valid.dtype} {tuple(valid.shape)}; expected near [{n}, K, ...] and valid bool "
                                f"[{n}, K]")
    if have[TREE] is None:
        _paths(env, label, y)


def _paths(env, label: str, y: torch.Tensor) -> None:
    """``path_step`` replayed for each object: from s0, each action allowed by ``forward_mask`` and leading by
    ``step`` to the next depth's state, and stop at depth ``level(y)``, where the state is y."""
    name = type(env).__name__
    rows = torch.arange(len(y), device=y.device)
    last = env.level(y)
    state, action = env.path_step(y, rows, torch.zeros_like(rows))
    if not bool(env.is_initial(state).all()):
        raise ContractError(f"{name}.path_step(y, b, 0) must give s0 (on {label})")
    for depth in range(env.max_length):
        allowed = env.forward_mask(state).gather(1, action[:, None])[:, 0]
        ends = depth == last[rows]
        problem = ~allowed | (ends != (action == env.stop)) | (ends & ~env.same(state, y[rows]))
        if bool(problem.any()):
            i = int(problem.nonzero()[0, 0])
            raise ContractError(
                f"{name}.path_step disagrees with its moves on {described(env.describe, y, int(rows[i]))} ({label}) "
                f"at depth {depth}: action {int(action[i])} from {described(env.describe, state, i)}; expected an "
                f"action forward_mask allows, and stop exactly at depth level(y) = {int(last[rows[i]])}, where the "
                f"state is y")
        going = ~ends
        if not bool(going.any()):
            return
        rows, state = rows[going], env.step(state[going], action[going])
        expected, action = env.path_step(y, rows, torch.full_like(rows, depth + 1))
        moved = env.same(state, expected)
        if not bool(moved.all()):
            i = int((~moved).nonzero()[0, 0])
            raise ContractError(f"{name}.path_step(y, b, {depth + 1}) gives {described(env.describe, expected, i)} "
                                f"for {described(env.describe, y, int(rows[i]))} ({label}), but step from depth "
                                f"{depth} leads to {described(env.describe, state, i)}")


def _listed(env) -> torch.Tensor | None:
    """Where the space is listed: every state once in ``index`` order from s0 and, on a tree, one parent each.
    Returns the states (None where the space is not listed)."""
    have, name = env.capabilities(), type(env).__name__
    if have[ENUMERABLE] is not None or env.n_states > LISTED_STATES:
        return None
    try:
        states = listed_states(env)
    except ValueError as err:
        raise ContractError(str(err)) from err
    if have[TREE] is not None:
        return states
    parents = env.backward_mask(states).sum(-1)
    if bool((parents > 1).any()):
        i = int((parents > 1).nonzero()[0, 0])
        raise ContractError(f"{name} declares 'tree' (one trajectory per object), but the state "
                            f"{described(env.describe, states, i)} has {int(parents[i])} parents (backward_mask): on "
                            f"a DAG give 'tree' a reason it is absent in capabilities()")
    return states


def _reaching(env, label: str, y: torch.Tensor, generator: torch.Generator) -> None:
    """The no-pre-training control (moves after which ``can_reach`` still holds, stop only at y) ends at y: a
    ``can_reach`` that says True where no moves lead to y sends it astray, one that says False on y's own path
    leaves it no move. Every pre-trained method's goal test and the control's exact conversion read it."""
    name = type(env).__name__
    ended = control_rollout(env, y, generator).terminals
    missed = ~env.same(ended, y)
    if bool(missed.any()):
        i = int(missed.nonzero()[0, 0])
        raise ContractError(f"{name}: following can_reach from s0 towards {described(env.describe, y, i)} ({label}) "
                            f"ended at {described(env.describe, ended, i)}; can_reach(s, y) must be True exactly where "
                            f"some sequence of moves leads from s to y")


def _ancestors(env, label: str, y: torch.Tensor, listed: torch.Tensor) -> None:
    """Where the space is listed: ``ancestors(y)`` gives, once each and sorted by (row, index), exactly the states
    from which ``can_reach`` reaches y, and ``child`` each valid move's pair inside y's sub-DAG (-1 for stop, for an
    invalid move and for one that leaves it). The sparse exact conversion reads nothing else: a wrong sub-DAG gives
    wrong "exact" results in silence."""
    name = type(env).__name__
    if env.capabilities()[ANCESTORS] is not None:
        return
    rows, states, child = env.ancestors(y)
    n, where = env.n_states, f"{name}.ancestors on {label}"
    if tuple(child.shape) != (len(rows), env.n_actions) or len(states) != len(rows):
        raise ContractError(f"{where} gives rows {tuple(rows.shape)}, states [{len(states)}, ...] and child "
                            f"{tuple(child.shape)}; expected one row, state and child row [n_actions = "
                            f"{env.n_actions}] per (outcome, state) pair")
    key = rows * n + env.index(states)
    expected = torch.cat([j * n + env.index(listed[env.can_reach(listed, y[j].expand_as(listed))])
                          for j in range(len(y))])
    if not torch.equal(key, expected):
        raise ContractError(f"{where}: expected, for each outcome in turn, every state from which can_reach reaches "
                            f"it, once each and in index order ({len(expected)} pairs in all); got {len(key)} pairs"
                            f"{'' if len(key) != len(expected) else ' in another order or set'}")
    mask = env.forward_mask(states)
    mask[:, env.stop] = False
    p, a = mask.nonzero(as_tuple=True)
    nxt = env.step(states[p], a)
    pos = torch.searchsorted(key, rows[p] * n + env.index(nxt)).clamp(max=len(key) - 1)
    want = torch.full_like(child, -1)
    want[p, a] = torch.where(env.can_reach(nxt, y[rows[p]]), pos, -1)
    if not torch.equal(child, want):
        i = int((child != want).any(-1).nonzero()[0, 0])
        raise ContractError(f"{where}: child of the pair ({described(env.describe, y, int(rows[i]))}, "
                            f"{described(env.describe, states, i)}) is {child[i].tolist()}; expected "
                            f"{want[i].tolist()} (each valid move's pair inside the sub-DAG, -1 for stop, an invalid "
                            f"move and a move that leaves it)")

