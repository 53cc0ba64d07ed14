"""Adaptation methods through a Task: the exact conversion of a hand-made perfect OC-GFN (dense strategy on the
grid), the amortized predictor (smoke run and exact resume), and short runs of DQN, MCMC and a scratch
GFlowNet with their curve rows (reward calls from the oracle, exact L1 where the method holds a policy)."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline_lib import plan
from pipeline_lib.config import method_config
from pipeline_lib.core.exact import terminal_distribution
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet, masked_log_softmax
from pipeline_lib.domains import make_env
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.methods.amortized import Amortized, CategoricalQ
from pipeline_lib.methods.dqn import DQN, DQNSettings
from pipeline_lib.methods.exact_conversion import ExactConversion, ExactSettings
from pipeline_lib.methods.mcmc import MCMC, MCMCSettings
from pipeline_lib.methods.scratch import Scratch, ScratchSettings
from pipeline_lib.ocgfn.sources import TrainedOCGFN
from pipeline_lib.ocgfn.tables import flow_tables, ocgfn_tables
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")


def make_task(config: dict, env: str, task: str, device: torch.device = CPU) -> Task:
    """The task of a config entry on its environment, as the stages build it (a fresh oracle: 0 calls)."""
    job = plan.target_job(config, env, task)
    return Task(make_env(job["env"]["domain"], job["env"]["params"], device), job["task"], job["resources"])


def gc_reward(strings: list[str]) -> list[float]:
    """A plug-in reward on DNA strings (what ``env.objects`` hands it): 0.2 + 1 per G or C, + 0.5 per leading A."""
    return [0.2 + sum(c in "GC" for c in s) + 0.5 * (s[:1] == "A") for s in strings]


GC_REWARD = f"{Path(__file__).resolve()}:gc_reward"


def tiny_gc_reward(strings: list[str]) -> list[float]:
    """``gc_reward`` times 1e-32: the same target R/Z, on values float32 holds (down to about 1.2e-38)."""
    return [1e-32 * r for r in gc_reward(strings)]


def huge_reward(objects: list) -> list[float]:
    """1e30 everywhere: within float32, but not once squared."""
    return [1e30] * len(objects)


def test_a_landscape_of_tiny_rewards_keeps_its_shape() -> None:
    """log R is taken of the checked values themselves, with no floor: a reward scaled by 1e-32 trains on the same
    differences of log R (what every method's loss and the DQN's log scale read) as the unscaled one."""
    env = Sequence(alphabet="dna", length=3)
    ys = env.terminal_states()
    unit = Task(env, {"reward": GC_REWARD, "params": {}}, "resources")
    tiny = Task(env, {"reward": f"{Path(__file__).resolve()}:tiny_gc_reward", "params": {}}, "resources")
    for read in ("log_reward", "uncounted_log_reward"):
        a, b = getattr(unit, read)(ys), getattr(tiny, read)(ys)
        assert torch.allclose(b - b.max(), a - a.max(), atol=1e-4), read


def curve(df: pd.DataFrame) -> pd.DataFrame:
    """A curve without its wall-clock column (the only one that may differ between identical runs)."""
    assert "seconds" in df.columns
    return df.drop(columns="seconds")


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
    task = make_task(test_config, "grid6", "corner")
    torch.manual_seed(0)
    env = task.env
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False)
    f1, p1 = ocgfn_tables(env, TrainedOCGFN(env, model))
    f2, p2 = ocgfn_tables(env, TrainedOCGFN(env, model), chunk=100)  # 2 outcomes per chunk
    assert f1.shape == (36, 36) and p1.shape == (36, 36, 3)
    assert torch.allclose(f1, f2, atol=1e-6) and torch.allclose(p1, p2, atol=1e-6)
    assert (f1[0] == 0).all()  # log F(s0|y) = 0 for every y
    # entry [s, y] is the model evaluated at (s, y)
    s, y = 7, 29
    feats = env.featurize(env.all_states())
    f, logits, _ = model(feats[s:s + 1], feats[y:y + 1], env.is_initial(env.all_states()[s:s + 1]))
    assert f1[s, y].item() == pytest.approx(f.item(), abs=1e-6)
    assert p1[s, y].exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    assert task.oracle.calls == 0  # building the task's tables queries no reward


def exact(task: Task, model, flow: str = "policy") -> ExactConversion:
    return ExactConversion(task, ExactSettings(flow=flow), seed=0, device=CPU, pretrained=TrainedOCGFN(task.env, model))


def test_exact_conversion_of_perfect_stub_is_exact(test_config: dict) -> None:
    task = make_task(test_config, "grid6", "peaks")
    log_f, log_pf = flow_tables(task.env, task.graph, TrainedOCGFN(task.env, PerfectStub(task.env)), "policy")
    # the stub's path to y = (2, 3) is s0 -> (1,0) -> (2,0) -> (2,1) -> (2,2) -> (2,3)
    y = task.env.index(torch.tensor([[2, 3]])).item()
    on_path = (log_f[:, y].exp() > 0.5).nonzero().flatten().tolist()
    assert on_path == task.env.index(torch.tensor([[0, 0], [1, 0], [2, 0], [2, 1], [2, 2], [2, 3]])).tolist()
    method = exact(task, PerfectStub(task.env))
    df = method.run(None)  # no training: a single curve row at step 0
    assert len(df) == 1
    row = df.iloc[0]
    assert row["step"] == 0 and row["trajectories"] == 0 and row["transitions"] == 0
    assert row["l1"] < 1e-5 and row["kl"] < 1e-5
    assert row["reward_calls"] == 36 and row["unique_reward_calls"] == 36  # every outcome queried once
    assert task.oracle.calls == 36
    assert row["modes_found"] == task.oracle.modes.total > 0  # every outcome was queried, so every mode found
    p = terminal_distribution(task.graph, method.table().double())
    assert torch.allclose(p, task.target.double(), atol=1e-5)
    assert method.exact_metrics()["l1"] == pytest.approx(row["l1"])


def test_exact_conversion_flow_choice(test_config: dict) -> None:
    # with the stub's (wrong off-path) flow head, the conversion is no longer exact: the choice matters
    task = make_task(test_config, "grid6", "corner")
    row = exact(task, PerfectStub(task.env), "learned").run(None).iloc[0]
    assert row["l1"] > 1e-3
    with pytest.raises(ValueError, match="flow: expected one of"):
        flow_tables(task.env, task.graph, TrainedOCGFN(task.env, PerfectStub(task.env)), "exact")
    with pytest.raises(ValueError, match="cannot run here: it takes flow in"):
        exact(make_task(test_config, "grid6", "corner"), PerfectStub(task.env), "exact")


def test_exact_conversion_needs_a_pretrained_model(test_config: dict) -> None:
    with pytest.raises(ValueError, match="adapts a goal-reaching source"):
        ExactConversion(make_task(test_config, "grid6", "corner"), ExactSettings(), 0, CPU)


def amortized(config: dict, steps: int, flow: str = "policy") -> Amortized:
    _, cfg = method_config(config, "amortized", "grid6")
    cfg = dataclasses.replace(cfg, steps=steps, eval_every=1, checkpoint_every=1, batch_size=4, hidden=16,
                              flow=flow)
    task = make_task(config, "grid6", "corner")
    torch.manual_seed(123)
    env = task.env
    model = OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 16, 1, False)
    return Amortized(task, cfg, seed=0, device=CPU, pretrained=TrainedOCGFN(env, model))


@pytest.mark.parametrize("flow", ["policy", "learned"])
def test_amortized_trainer_runs(test_config: dict, flow: str) -> None:
    trainer = amortized(test_config, 3, flow)
    assert isinstance(trainer.q, CategoricalQ)  # the grid is a DAG: a categorical Q over the enumerated outcomes
    df = trainer.run(None)
    assert df["step"].tolist() == [0, 1, 2, 3]
    assert df["loss"].iloc[1:].map(lambda v: v == v and abs(v) < float("inf")).all()
    assert df["l1"].between(0, 2).all()
    assert (df["reward_calls"].diff().iloc[1:] > 0).all()  # K reward calls per move, one per stop
    assert trainer.task.oracle.calls == df["reward_calls"].iloc[-1]
    moves = df["transitions"] - df["trajectories"]  # every trajectory ends with one stop
    assert (moves * trainer.cfg.outcomes_per_transition + df["trajectories"] == df["reward_calls"]).all()
    assert (df["unique_reward_calls"] <= df["reward_calls"]).all()


def test_amortized_trainer_resume_is_exact(test_config: dict, tmp_path: Path) -> None:
    full = amortized(test_config, 4).run(tmp_path / "a.ckpt")
    part = amortized(test_config, 4)
    part.steps = 2
    part.run(tmp_path / "b.ckpt")
    resumed = amortized(test_config, 4).run(tmp_path / "b.ckpt")
    pd.testing.assert_frame_equal(curve(resumed), curve(full))


# ---------------------------------------------------------------------------------- baselines on tiny spaces


def test_dqn_runs_on_a_tiny_grid(test_config: dict) -> None:
    """DQN: one reward call per trajectory (its terminal), and the exact L1 of its epsilon-greedy policy."""
    task = make_task(test_config, "grid6", "corner")
    cfg = DQNSettings(steps=4, batch_size=4, hidden=16, eval_every=1, checkpoint_every=1, buffer_size=64,
                      target_every=2)
    method = DQN(task, cfg, seed=0, device=CPU)
    df = method.run(None)
    assert df["step"].tolist() == [0, 1, 2, 3, 4]
    assert df["reward_calls"].tolist() == [0, 4, 8, 12, 16] == df["trajectories"].tolist()
    assert (df["reward_calls"].iloc[1:] > 0).all() and task.oracle.calls == 16
    assert df["l1"].notna().all() and df["l1"].between(0, 2).all() and df["kl"].notna().all()
    p = terminal_distribution(task.graph, method.table().double())
    assert df["l1"].iloc[-1] == pytest.approx(float((p - task.target.double()).abs().sum()), abs=1e-6)
    assert df["loss"].iloc[1:].map(math.isfinite).all()


@pytest.mark.parametrize("scale", ["log", "rank", "raw"])
def test_dqn_reward_scales(test_config: dict, scale: str) -> None:
    """DQN's terminal reward on each scale: log R^exponent, R^exponent, or the rank among the distinct
    objects queried (in [0, 1], monotone in R); an unknown scale is refused naming the setting."""
    task = make_task(test_config, "grid6", "peaks")
    cfg = DQNSettings(steps=2, batch_size=4, hidden=16, eval_every=1, checkpoint_every=1, buffer_size=64,
                      reward_scale=scale)
    method = DQN(task, cfg, seed=0, device=CPU)
    method.run(None)
    x = task.env.all_states()
    r = method.terminal_reward(x)
    expected = task.uncounted_log_reward(x)
    if scale == "log":
        assert torch.allclose(r, expected)
    elif scale == "raw":
        assert torch.allclose(r, expected.exp())
        huge = Task(task.env, {"reward": f"{Path(__file__).resolve()}:huge_reward", "exponent": 2}, "resources")
        with pytest.raises(FloatingPointError, match=r"reward_scale 'raw': R\^exponent = exp\(138.2\) exceeds float32"):
            DQN(huge, cfg, seed=0, device=CPU).terminal_reward(x)  # (1e30)^2: named, not a non-finite loss later
    else:
        assert r.min() >= 0 and r.max() <= 1 and r.max() > r.min()
        order = expected.argsort()
        assert (r[order].diff() >= 0).all()
    with pytest.raises(ValueError, match="takes reward_scale in"):
        DQN(make_task(test_config, "grid6", "peaks"), DQNSettings(reward_scale="R8"), seed=0, device=CPU)


def test_mcmc_runs_on_a_tiny_grid(test_config: dict) -> None:
    """MCMC: the chains' starts and every moved proposal are reward calls; it holds no policy, so no exact L1;
    its samples are the chains' states and their rewards are not counted."""
    task = make_task(test_config, "grid6", "corner")
    method = MCMC(task, MCMCSettings(steps=4, batch_size=8, eval_every=1, checkpoint_every=1), seed=0, device=CPU)
    df = method.run(None)
    assert df["step"].tolist() == [0, 1, 2, 3, 4]
    assert df["reward_calls"].iloc[0] == 8  # the starting chains
    assert (df["reward_calls"] > 0).all() and (df["reward_calls"].diff().iloc[1:] >= 0).all()
    assert df["reward_calls"].iloc[-1] > 8 and df["reward_calls"].iloc[-1] == task.oracle.calls
    assert (df["reward_calls"].diff().iloc[1:] <= 8).all()  # at most one proposal per chain and step
    assert df["trajectories"].tolist() == [0, 8, 16, 24, 32]
    assert df["l1"].isna().all() and df["kl"].isna().all()
    assert method.table() is None and math.isnan(method.exact_metrics()["l1"])
    calls = task.oracle.calls
    x = method.sample(20, torch.Generator().manual_seed(1))
    assert x.shape == (20, 2) and ((x >= 0) & (x < 6)).all()
    assert task.oracle.calls == calls


def test_scratch_gflownet_on_a_sequence_space_reports_its_exact_l1() -> None:
    """A scratch GFlowNet on an enumerable sequence tree (ACGT^3, a plug-in reward): each curve row carries
    the exact L1 of its policy, checked here against P(x) = product of P_F along x's one path."""
    env = Sequence(alphabet="dna", length=3)
    task = Task(env, {"reward": GC_REWARD, "params": {}}, "resources")
    assert task.enumerable and len(env.terminal_states()) == 64
    method = Scratch(task, ScratchSettings(steps=3, batch_size=8, hidden=16, eval_every=1, checkpoint_every=1),
                     seed=0, device=CPU)
    df = method.run(None)
    assert df["step"].tolist() == [0, 1, 2, 3]
    assert df["l1"].notna().all() and df["l1"].between(0, 2).all() and df["kl"].notna().all()
    assert df["reward_calls"].tolist() == [0, 8, 16, 24]  # one call per terminal object
    # independent check of the last row's L1 on the tree
    ys = env.terminal_states()
    log_p = torch.zeros(len(ys), dtype=torch.float64)
    with torch.no_grad():
        for j in range(env.length + 1):
            prefix = torch.where(torch.arange(env.length) < j, ys, env.pad)
            action = ys[:, j] if j < env.length else torch.full((len(ys),), env.stop)
            logits = method.model(env.featurize(prefix))[1]
            log_p += masked_log_softmax(logits, env.forward_mask(prefix)).gather(1, action[:, None])[:, 0].double()
    r = torch.tensor(gc_reward(env.decode(ys)), dtype=torch.float64)
    assert torch.allclose(task.landscape.double(), r, atol=1e-6)
    l1 = float((log_p.exp() - r / r.sum()).abs().sum())
    assert df["l1"].iloc[-1] == pytest.approx(l1, abs=1e-5)
