"""The set domain, added by following the README's "Extending" steps: a DAG (k! trajectories per set of k
items) on which every method runs through the shared protocol, and the dense exact conversion is exact."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pipeline_lib.core.exact import StateGraph, terminal_distribution
from pipeline_lib.core.nets import NEG_INF, OutcomeConditionedGFlowNet
from pipeline_lib.descriptors import Descriptor
from pipeline_lib.domains import make_env
from pipeline_lib.methods import METHODS, method_class
from pipeline_lib.ocgfn.sources import GoalReaching, TrainedOCGFN
from pipeline_lib.tasks.task import Task


def t(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_masks_steps_and_reversibility() -> None:
    env = make_env("subset", {"n": 4, "max_size": 3, "min_size": 1})
    s = t([[0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]])
    mask = env.forward_mask(s)
    assert mask.tolist() == [[True, True, True, True, False], [False, True, False, True, True],
                             [False, False, False, False, True]]  # full at max_size: only stop
    child = env.step(s[:2], torch.tensor([2, 1]))
    assert child.tolist() == [[0, 0, 1, 0], [1, 1, 1, 0]]
    back = env.backward_action(s[:2], torch.tensor([2, 1]))
    assert (child - torch.nn.functional.one_hot(back, 4)).tolist() == s[:2].tolist()  # undo the move
    assert env.backward_mask(child).tolist() == [[False, False, True, False], [True, True, True, False]]
    assert env.step(s, torch.full((3,), env.stop)).tolist() == s.tolist()  # stop keeps the state
    assert env.can_reach(t([[1, 0, 0, 0], [1, 0, 0, 0]]), t([[1, 1, 0, 0], [0, 1, 0, 0]])).tolist() == [True, False]
    have = env.capabilities()
    assert have["enumerable"] is None and "k!" in have["tree"] and have["local_moves"] is None


def test_enumeration_and_terminal_handling() -> None:
    env = make_env("subset", {"n": 4, "max_size": 2, "min_size": 1})
    x = env.terminal_states()
    assert len(x) == 4 + 6 and ((env.sizes(x) >= 1) & (env.sizes(x) <= 2)).all()
    states = env.all_states()
    assert torch.equal(env.index(states), torch.arange(16))
    graph = StateGraph.build(env)
    uniform = torch.where(graph.mask, 0.0, NEG_INF).log_softmax(-1)
    p = terminal_distribution(graph, uniform)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-6) and (p[env.index(x)] > 0).all()
    outside = torch.ones(16, dtype=torch.bool)
    outside[env.index(x)] = False
    assert p[outside].abs().max() < 1e-7  # no mass off the objects (the empty set, sets above max_size)


@pytest.mark.parametrize(("params", "message"), [({"n": 4, "min_size": 5}, "min_size <= max_size"),
                                                 ({"n": "four"}, r"params\.n: expected int")])
def test_bad_params(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_env("subset", params)


def test_rewards_local_moves_and_description() -> None:
    env = make_env("subset", {"n": 5})
    task = Task(env, {"reward": "weights", "params": {"seed": 3}})
    x = env.random_outcomes(64, torch.Generator().manual_seed(0))
    r = task.reward(x)
    assert r.shape == (64,) and (r > 0).all()
    assert torch.equal(task.reward(x), r)  # deterministic in the seed
    new, log_q, moved = env.propose(x, torch.Generator().manual_seed(1))
    assert (log_q == 0).all() and ((new != x).sum(-1) == moved.long()).all()
    import pandas as pd
    assert torch.equal(env.parse(pd.DataFrame(env.describe(x))), x)
    assert env.objects(t([[1, 0, 0, 1, 0]])) == [[0, 3]]
    with pytest.raises(ValueError, match="floor"):
        Task(env, {"reward": "weights", "params": {"floor": 0.0}})


def test_every_method_runs_and_the_dense_conversion_is_exact() -> None:
    """Every method on sets; the pre-trained ones adapt the no-pre-training control (fine-tuning: weights), whose dense
    conversion
    (F from its visit probabilities) is exact on this DAG."""
    env = make_env("subset", {"n": 5, "max_size": 3, "min_size": 1})  # sets of 4 and 5 are listed but no objects
    spec = {"reward": "weights", "params": {"seed": 1}, "exponent": 2.0, "modes": {"kind": "local_optima",
                                                                                     "top_fraction": 0.2}}
    for kind, cls in METHODS.items():
        task = Task(env, spec)
        trained = "steps" in {f.name for f in dataclasses.fields(cls.Settings)}
        settings = cls.Settings(steps=4, batch_size=8, eval_every=2) if trained else cls.Settings()
        if hasattr(settings, "hidden"):
            settings.hidden = 16
        assert cls.unsupported(env, settings) is None, kind
        source = None
        if cls.uses_descriptor:  # descriptor outcomes (the set's size in bins): their control, built from phi
            source = Descriptor("size", ["size"], [[1.5, 2.5, 3.5]], lambda objs: [[len(o)] for o in objs], env)
        elif cls.uses_pretrained:  # the control where the method can adapt it, else an (untrained) OC-GFN's weights
            source = GoalReaching(env) if cls.without_weights(settings) is None else TrainedOCGFN(
                env, OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 2, False))
        method = cls(task, settings, 0, torch.device("cpu"), source)
        curve = method.run()
        last = curve.iloc[-1]
        assert last["reward_calls"] > 0 and last["unique_reward_calls"] <= len(env.terminal_states())
        x = method.sample(50, torch.Generator().manual_seed(2))
        assert len(x) == 50 and ((env.sizes(x) >= 1) & (env.sizes(x) <= 3)).all()
        if kind == "exact":
            p = terminal_distribution(task.graph, method.table().double())
            assert torch.allclose(p, task.target.double(), atol=1e-6, rtol=0)
            assert curve["modes_found"].iloc[-1] == task.oracle.modes.total > 0
        elif kind in ("mcmc", "random"):
            assert math.isnan(curve["l1"].iloc[-1])
        elif cls.uses_descriptor:  # no policy table: the check is over outcomes, against the exact marginal
            assert math.isnan(curve["l1"].iloc[-1]) and 0 <= method.exact_metrics()["outcome_l1_exact"] <= 2
        else:
            assert 0 < curve["l1"].iloc[-1] <= 2
    assert method_class("amortized").unsupported(make_env("subset", {"n": 30}), method_class("amortized").Settings())


def test_a_new_domain_that_breaks_the_protocol_is_told_how() -> None:
    """What a domain added by following the README most easily gets wrong, each refused with the fix: a
    capability left out of capabilities(), can_reach reducing more than the state's own dimensions (the exact
    tables call it on [S, Y, ...] pairs), and 'enumerable' without n_states."""
    import pipeline_lib.domains as domains
    from pipeline_lib.core.env import TREE, missing
    from pipeline_lib.domains.subset.env import Subset
    from pipeline_lib.ocgfn.tables import reachability

    class Forgetful(Subset):
        def capabilities(self):
            return {k: v for k, v in super().capabilities().items() if k != TREE}

    with pytest.raises(ValueError, match=r"Forgetful.capabilities\(\) lacks 'tree'"):
        missing(Forgetful(4), (TREE,))

    class Flat(Subset):
        def can_reach(self, states, outcomes):  # reduces every dimension after the first
            return (states <= outcomes).flatten(1).all(-1)

    env = Flat(3)
    with pytest.raises(ValueError, match=r"Flat.can_reach gave shape \(8,\) on \[S, Y, \.\.\.\] pairs"):
        reachability(env, StateGraph.build(env))

    class Uncounted(Subset):
        def __init__(self, n: int, device: str = "cpu") -> None:
            super().__init__(n, device=device)
            del self.n_states

    original = domains.domain_class
    domains.domain_class = lambda name: Uncounted if name == "uncounted" else original(name)
    try:
        with pytest.raises(ValueError, match="declares 'enumerable' but has no int n_states"):
            domains.make_env("uncounted", {"n": 3})
    finally:
        domains.domain_class = original
