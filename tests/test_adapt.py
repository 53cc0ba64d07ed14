"""Adaptation: exact conversion of a hand-made perfect OC-GFN through the learned-table path, and the
amortized trainer (smoke run and exact resume)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline_lib.adapt import AmortizedTrainer, exact_conversion, flow_tables, ocgfn_tables
from pipeline_lib.config import method_config
from pipeline_lib.core.exact import terminal_distribution
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet
from pipeline_lib.stages import make_task

CPU = torch.device("cpu")


class PerfectStub:
    """Hand-made OC-GFN on a hypergrid: raise the first coordinate still below y, stop exactly at y.
    Its flow head says log F = 0 everywhere (only right on the sampler's own path)."""

    def __init__(self, env) -> None:
        self.env = env

    def __call__(self, state_feats, outcome_feats, initial):
        env = self.env
        s = state_feats.view(len(state_feats), env.ndim, env.side).argmax(-1)
        y = outcome_feats.view(len(outcome_feats), env.ndim, env.side).argmax(-1)
        logits = torch.full((len(s), env.n_actions), -80.0)
        below = s < y
        first = below.float().argmax(-1)
        move = below.any(-1)
        logits[move, first[move]] = 0.0
        logits[~move, env.stop] = 0.0
        return torch.zeros(len(s)), logits, None


def test_ocgfn_tables_chunking(test_config: dict) -> None:
    task = make_task(test_config, "grid6", "corner", CPU)
    torch.manual_seed(0)
    env = task.env
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False)
    f1, p1 = ocgfn_tables(env, model)
    f2, p2 = ocgfn_tables(env, model, chunk=100)  # 2 outcomes per chunk
    assert f1.shape == (36, 36) and p1.shape == (36, 36, 3)
    assert torch.allclose(f1, f2, atol=1e-6) and torch.allclose(p1, p2, atol=1e-6)
    assert (f1[0] == 0).all()  # log F(s0|y) = 0 for every y
    # entry [s, y] is the model evaluated at (s, y)
    s, y = 7, 29
    feats = env.featurize(env.all_states())
    f, logits, _ = model(feats[s:s + 1], feats[y:y + 1], env.is_initial(env.all_states()[s:s + 1]))
    assert f1[s, y].item() == pytest.approx(f.item(), abs=1e-6)
    assert p1[s, y].exp().sum().item() == pytest.approx(1.0, abs=1e-6)


def test_exact_conversion_of_perfect_stub_is_exact(test_config: dict) -> None:
    task = make_task(test_config, "grid6", "peaks", CPU)
    log_f, log_pf = flow_tables(task.env, task.graph, PerfectStub(task.env), "policy")
    # the stub's path to y = (2, 3) is s0 -> (1,0) -> (2,0) -> (2,1) -> (2,2) -> (2,3)
    y = task.env.index(torch.tensor([[2, 3]])).item()
    on_path = (log_f[:, y].exp() > 0.5).nonzero().flatten().tolist()
    assert on_path == task.env.index(torch.tensor([[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [2, 3]])).tolist()
    table, row = exact_conversion(task, PerfectStub(task.env), "policy")
    assert row["l1"] < 1e-5 and row["kl"] < 1e-5
    assert row["reward_calls"] == 36 and row["unique_reward_calls"] == 36
    p = terminal_distribution(task.graph, table.double())
    assert torch.allclose(p, task.target.double(), atol=1e-5)


def test_exact_conversion_flow_choice(test_config: dict) -> None:
    # with the stub's (wrong off-path) flow head, the conversion is no longer exact: the choice matters
    task = make_task(test_config, "grid6", "corner", CPU)
    _, row = exact_conversion(task, PerfectStub(task.env), "learned")
    assert row["l1"] > 1e-3
    with pytest.raises(ValueError, match="flow: expected one of"):
        flow_tables(task.env, task.graph, PerfectStub(task.env), "exact")


def amortized(config: dict, steps: int, flow: str = "policy") -> AmortizedTrainer:
    _, cfg = method_config(config, "amortized")
    cfg = dataclasses.replace(cfg, steps=steps, eval_every=1, checkpoint_every=1, batch_size=4, hidden=16,
                              flow=flow)
    task = make_task(config, "grid6", "corner", CPU)
    torch.manual_seed(123)
    env = task.env
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False)
    return AmortizedTrainer(task, model, cfg, seed=0, device=CPU)


@pytest.mark.parametrize("flow", ["policy", "learned"])
def test_amortized_trainer_runs(test_config: dict, flow: str) -> None:
    trainer = amortized(test_config, 3, flow)
    df = trainer.run(None)
    assert df["step"].tolist() == [0, 1, 2, 3]
    assert df["loss"].iloc[1:].map(lambda v: v == v and abs(v) < float("inf")).all()
    assert df["l1"].between(0, 2).all()
    assert (df["reward_calls"].diff().iloc[1:] > 0).all()  # K reward calls per transition
    assert trainer.task.reward.calls == df["reward_calls"].iloc[-1]
    assert df["transitions"].iloc[-1] * trainer.cfg.outcomes_per_transition == df["reward_calls"].iloc[-1]


def test_amortized_trainer_resume_is_exact(test_config: dict, tmp_path: Path) -> None:
    full = amortized(test_config, 4).run(tmp_path / "a.ckpt")
    part = amortized(test_config, 4)
    part.steps = 2
    part.run(tmp_path / "b.ckpt")
    resumed = amortized(test_config, 4).run(tmp_path / "b.ckpt")
    pd.testing.assert_frame_equal(resumed, full)
