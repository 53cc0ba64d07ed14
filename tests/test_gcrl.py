"""The goal-conditioned RL baseline (ocgfn/gcrl.py): hindsight relabelling, the double-DQN target, that it
reaches goals on a tiny grid, that it resumes exactly, and that its Boltzmann policy enters the same
adaptation as the OC-GFN (with the conversion exact only as far as it reaches its goals)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch

from pipeline_lib import io
from pipeline_lib.config import ConfigError, method_config, pretrain_config
from pipeline_lib.core.exact import terminal_distribution
from pipeline_lib.core.rollout import Trajectories
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.methods.exact_conversion import ExactConversion, ExactSettings
from pipeline_lib.ocgfn.gcrl import GCRLPretrainer, pretrainer
from pipeline_lib.ocgfn.pretrain import PretrainConfig, Pretrainer, success_rate
from pipeline_lib.ocgfn.sources import BoltzmannQ, pretrained_source
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")
SMALL = {"batch_size": 32, "hidden": 64, "layers": 2, "rnd_hidden": 32, "rnd_dim": 16, "eval_every": 100,
         "eval_outcomes": 64, "checkpoint_every": 100, "algorithm": "gcrl", "replay_batch": 256}


def test_gcrl_reaches_goals_on_a_tiny_grid() -> None:
    env = HyperGrid(ndim=2, side=4)
    trainer = pretrainer(env, PretrainConfig(**{**SMALL, "steps": 300}), seed=0, device=CPU)
    assert isinstance(trainer, GCRLPretrainer)
    df = trainer.run(None)
    assert df["success_greedy"].iloc[0] < 0.5
    assert df["success_greedy"].iloc[-1] >= 0.9 and df["success_sample"].iloc[-1] >= 0.8
    assert df["trajectories"].iloc[-1] == 2 * 300 * 32  # explorer + own rollouts: OC-GFN's environment steps
    assert isinstance(pretrainer(env, PretrainConfig(**{**SMALL, "algorithm": "ocgfn"}), 0, CPU), Pretrainer)


def test_hindsight_relabelling() -> None:
    """One trajectory s0 -> (1,0) -> (1,1) -> stop towards goal (3,3): its own goal fails everywhere; 'final'
    relabels every transition with (1,1) (success at the stop); 'future' adds later objects and the stop there."""
    env = HyperGrid(ndim=2, side=4)
    t = torch.tensor
    states = t([[[0, 0]], [[1, 0]], [[1, 1]], [[1, 1]]])
    traj = Trajectories(states, t([[0], [1], [env.stop]]), torch.ones(3, 1, dtype=torch.bool), t([[1, 1]]))
    trainer = GCRLPretrainer(env, PretrainConfig(**{**SMALL, "her": "final+future"}), 0, CPU)
    trainer._remember(traj, t([[3, 3]]))
    data = {k: v[:trainer.replay.size] for k, v in trainer.replay.data.items()}
    own = data["goal"].eq(t([3, 3])).all(-1)
    assert own.sum() == 3 and data["reward"][own].sum() == 0 and data["done"][own].tolist() == [False, False, True]
    final = data["goal"].eq(t([1, 1])).all(-1)
    # 3 own + 3 final + 2 future (one per move) + 2 stops at those future goals
    assert trainer.replay.size == 10 and data["reward"].sum() == 3
    success = data["reward"] == 1
    assert (data["action"][success] == env.stop).all() and env.same(data["state"][success], data["goal"][success]).all()
    assert final.sum() >= 3 and data["reward"][final].sum() >= 1
    # moving away from a goal it can no longer reach ends the episode
    unreachable = ~env.can_reach(data["next_state"], data["goal"])
    assert data["done"][unreachable].all()


def test_double_dqn_target() -> None:
    """Q is regressed on r + gamma Q_target(s', argmax_a Q_online(s', a)) over the valid actions at s'."""
    env = HyperGrid(ndim=1, side=3)  # actions: +1 (0), stop (1)
    cfg = PretrainConfig(**{**SMALL, "gamma": 0.5, "lr": 1.0})
    trainer = GCRLPretrainer(env, cfg, 0, CPU)

    class Fixed(torch.nn.Module):  # Q(s, a | y) = (a == 0) * 2 + state coordinate; log F 0
        def forward(self, sf, of, initial):
            pos = sf.view(len(sf), env.side).argmax(-1).float()
            return torch.zeros(len(sf)), torch.stack([2 + pos, pos], -1), None

    trainer.target = Fixed()
    batch = {"state": torch.tensor([[0]]), "action": torch.tensor([0]), "next_state": torch.tensor([[1]]),
             "goal": torch.tensor([[2]]), "reward": torch.tensor([0.25]), "done": torch.tensor([False])}
    feats = {k: env.featurize(batch[k]) for k in ("state", "next_state", "goal")}
    with torch.no_grad():
        q_before = trainer.model(feats["state"], feats["goal"], env.is_initial(batch["state"]))[1][0, 0]
        online_next = trainer.model(feats["next_state"], feats["goal"], env.is_initial(batch["next_state"]))[1][0]
    pick = int(online_next.argmax())  # both actions are valid at s' = 1
    target = 0.25 + 0.5 * (3.0 if pick == 0 else 1.0)  # valued by the target network, not the online one
    want = torch.nn.functional.smooth_l1_loss(q_before, torch.tensor(target)).item()
    assert trainer._update(batch) == pytest.approx(want, rel=1e-5)
    batch["done"] = torch.tensor([True])  # a terminal transition: no bootstrap
    with torch.no_grad():
        q_now = trainer.model(feats["state"], feats["goal"], env.is_initial(batch["state"]))[1][0, 0]
    assert trainer._update(batch) == pytest.approx(
        torch.nn.functional.smooth_l1_loss(q_now, torch.tensor(0.25)).item(), rel=1e-5)


def test_gcrl_resume_is_exact(tmp_path: Path) -> None:
    env = HyperGrid(ndim=2, side=3)
    cfg = PretrainConfig(**{**SMALL, "steps": 6, "eval_every": 3, "checkpoint_every": 3})
    full = GCRLPretrainer(env, cfg, 1, CPU).run(tmp_path / "a.ckpt")
    part = GCRLPretrainer(env, cfg, 1, CPU)
    part.steps = 3
    part.run(tmp_path / "b.ckpt")
    resumed = GCRLPretrainer(env, cfg, 1, CPU).run(tmp_path / "b.ckpt")
    pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), full.drop(columns="seconds"))  # wall-clock aside


def test_gcrl_policy_enters_the_same_adaptation(tmp_path: Path) -> None:
    """Its model file loads as a Boltzmann source; the dense conversion of its policy is exact in as far as it
    reaches its goals: on a tiny grid a trained agent converts to a small L1."""
    env = HyperGrid(ndim=2, side=4)
    cfg = PretrainConfig(**{**SMALL, "steps": 300, "temperature": 0.02})
    trainer = GCRLPretrainer(env, cfg, 0, CPU)
    trainer.run(None)
    path = tmp_path / "model.pt"
    io.save_checkpoint({"config": dataclasses.asdict(cfg), "env": {}, "state_dict": trainer.model.state_dict()}, path)
    source = pretrained_source("gcrl", str(path), env, CPU)
    assert isinstance(source, BoltzmannQ) and not source.has_flow
    assert success_rate(env, trainer.sampler(), env.all_states(), True, None) >= 0.9
    task = Task(env, {"reward": "corner", "params": {}}, "resources")
    method = ExactConversion(task, ExactSettings(flow="policy"), 0, CPU, pretrained=source)
    p = terminal_distribution(task.graph, method.table().double())
    assert (p - task.target.double()).abs().sum() < 0.3


def test_settings_an_algorithm_never_reads_rerun_nothing(test_config: dict) -> None:
    """A GCRL setting shared by every variant leaves the OC-GFN variants' jobs as they were (their params carry it at
    its default), and the reverse; set on one variant's own entry, it is refused as a mistake."""
    from pipeline_lib.plan import pretrain_job

    variants = test_config["pretrain"]["variants"]
    variants["gcrl"] = {"algorithm": "gcrl"}
    test_config["envs"]["grid6"]["variants"] = [*test_config["envs"]["grid6"].get("variants", ["full"]), "gcrl"]
    before = {v: pretrain_job(test_config, "grid6", v) for v in ("full", "gcrl")}
    test_config["pretrain"]["settings"].update(her="future", temperature=3.0, negative_epsilon=0.2)
    after = {v: pretrain_job(test_config, "grid6", v) for v in ("full", "gcrl")}
    assert after["full"]["settings"] == {**before["full"]["settings"], "negative_epsilon": 0.2}
    assert after["gcrl"]["settings"] == {**before["gcrl"]["settings"], "her": "future", "temperature": 3.0}
    variants["full"]["gamma"] = 0.5
    with pytest.raises(ConfigError, match=r"pretrain.variants.full: \['gamma'\]: algorithm 'ocgfn' never reads"):
        pretrain_config(test_config, "full")
    variants["full"].pop("gamma")
    variants["gcrl_phi"] = {"algorithm": "gcrl", "outcomes": "descriptor"}  # the algorithm is what is wrong
    with pytest.raises(ConfigError, match="pretrain.variants.gcrl_phi.algorithm: 'gcrl' with outcomes: descriptor"):
        pretrain_config(test_config, "gcrl_phi")
    variants["gcrl"]["contrastive"] = False
    with pytest.raises(ConfigError, match=r"pretrain.variants.gcrl: \['contrastive'\]: algorithm 'gcrl' never"):
        pretrain_config(test_config, "gcrl")


def test_gcrl_config_is_checked(test_config: dict) -> None:
    variants = test_config["pretrain"]["variants"]
    variants["gcrl"] = {"algorithm": "gcrl", "her": "sometimes"}
    with pytest.raises(ConfigError, match="pretrain.variants.gcrl.her: expected one of"):
        pretrain_config(test_config, "gcrl")
    variants["gcrl"] = {"algorithm": "dqn"}
    with pytest.raises(ConfigError, match="pretrain.variants.gcrl.algorithm: expected one of"):
        pretrain_config(test_config, "gcrl")
    variants["gcrl"] = {"algorithm": "gcrl"}
    test_config["envs"]["grid6"]["variants"] = [*test_config["envs"]["grid6"].get("variants", ["full"]), "gcrl"]
    test_config["finetune"]["methods"]["exact_gcrl"] = {"kind": "exact", "pretrained": "gcrl", "flow": "learned"}
    with pytest.raises(ConfigError, match="exact_gcrl.flow: variant 'gcrl' is the GCRL baseline"):
        method_config(test_config, "exact_gcrl", "grid6")
