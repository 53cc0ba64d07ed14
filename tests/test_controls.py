"""The no-pre-training control (ocgfn/sources.py): a goal-reaching policy from the reachability test alone,
adapted by the same code as the pre-trained OC-GFN, converts every tiny space to R/Z exactly."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline_lib import plan
from pipeline_lib.config import ConfigError, method_config
from pipeline_lib.core.exact import terminal_distribution
from pipeline_lib.core.nets import masked_log_softmax
from pipeline_lib.core.rollout import rollout
from pipeline_lib.domains import make_env
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.methods.amortized import Amortized
from pipeline_lib.methods.exact_conversion import ExactConversion, ExactSettings
from pipeline_lib.ocgfn.sources import CONTROL, GoalReaching, pretrained_source
from pipeline_lib.ocgfn.tables import flow_tables, path_log_probs
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")


def ab_reward(strings: list[str]) -> list[float]:
    """A plug-in reward on strings over {a, b}."""
    return [0.1 + s.count("a") + 2.0 * s.endswith("b") + 0.3 * len(s) for s in strings]


AB_REWARD = f"{Path(__file__).resolve()}:ab_reward"


def grid_task(config: dict, task: str = "peaks") -> Task:
    job = plan.target_job(config, "grid6", task)
    return Task(make_env(job["env"]["domain"], job["env"]["params"], CPU), job["task"], job["resources"])


def test_control_always_reaches_its_goal(test_config: dict) -> None:
    env = grid_task(test_config).env
    y = env.all_states()
    control = GoalReaching(env)

    def policy(states: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return masked_log_softmax(control(states, y[rows])[1], mask)

    traj = rollout(env, policy, len(y), generator=torch.Generator().manual_seed(0))
    assert env.same(traj.terminals, y).all()


@pytest.mark.parametrize("task", ["corner", "peaks"])
def test_control_converts_a_tiny_grid_exactly(test_config: dict, task: str) -> None:
    """The dense conversion of the untrained control is R/Z to 1e-6 (method.md 7): F(s|y) is its exact
    visit probability, so no training is needed."""
    task = grid_task(test_config, task)
    method = ExactConversion(task, ExactSettings(flow="policy"), 0, CPU, pretrained=GoalReaching(task.env))
    p = terminal_distribution(task.graph, method.table().double())
    assert (p - task.target.double()).abs().sum() < 1e-6
    assert method.run(None).iloc[0]["l1"] < 1e-6


@pytest.mark.parametrize("min_length", [1, 3])
def test_control_converts_a_tiny_tree_exactly(min_length: int) -> None:
    """On an append-only tree the control is the perfect OC-GFN: F(s|y) = 1 on y's prefixes."""
    env = Sequence("ab", 3, min_length)
    task = Task(env, {"reward": AB_REWARD, "params": {}}, "resources")
    method = ExactConversion(task, ExactSettings(flow="policy"), 0, CPU, pretrained=GoalReaching(env))
    p = terminal_distribution(task.graph, method.table().double())
    assert (p - task.target.double()).abs().sum() < 1e-6
    ys = env.terminal_states()
    assert torch.allclose(path_log_probs(env, GoalReaching(env), ys, env.level(ys), "policy"),
                          torch.zeros(len(ys)), atol=1e-6)


def test_control_converts_a_dag_exactly() -> None:
    """On the prepend-append DAG (many paths per object) the dense conversion of the control is exact too."""
    env = Sequence("ab", 3, 1, mode="prepend_append")
    task = Task(env, {"reward": AB_REWARD, "params": {}}, "resources")
    method = ExactConversion(task, ExactSettings(flow="policy"), 0, CPU, pretrained=GoalReaching(env))
    p = terminal_distribution(task.graph, method.table().double())
    assert (p - task.target.double()).abs().sum() < 1e-6


def test_control_has_no_flow_head(test_config: dict) -> None:
    task = grid_task(test_config)
    with pytest.raises(ValueError, match="'learned' needs a flow head"):
        flow_tables(task.env, task.graph, GoalReaching(task.env), "learned")
    test_config["finetune"]["methods"]["amortized_control"] = {"kind": "amortized", "pretrained": CONTROL,
                                                               "flow": "learned"}
    with pytest.raises(ConfigError, match="amortized_control.flow: learned reads the OC-GFN.s flow head"):
        method_config(test_config, "amortized_control", "grid6")


def test_amortized_predictor_runs_on_the_control(test_config: dict) -> None:
    test_config["finetune"]["methods"]["amortized_control"] = {"kind": "amortized", "pretrained": CONTROL,
                                                               "flow": "policy"}
    _, cfg = method_config(test_config, "amortized_control", "grid6")
    cfg = dataclasses.replace(cfg, steps=3, eval_every=1, checkpoint_every=1, batch_size=4, hidden=16)
    task = grid_task(test_config, "corner")
    source = pretrained_source(CONTROL, None, task.env, CPU)
    df = Amortized(task, cfg, seed=0, device=CPU, pretrained=source).run(None)
    assert df["step"].tolist() == [0, 1, 2, 3] and df["l1"].notna().all()


def test_reserved_variant_name(test_config: dict) -> None:
    from pipeline_lib.config import pretrain_config

    with pytest.raises(ConfigError, match="'control' is reserved"):
        pretrain_config(test_config, CONTROL, "grid6")
