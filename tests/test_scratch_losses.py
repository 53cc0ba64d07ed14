"""Trajectory balance and sub-trajectory balance, on hand-checked values and inside the scratch GFlowNet."""
from __future__ import annotations

import itertools

import pytest
import torch

from pipeline_lib.core.losses import subtrajectory_balance, trajectory_balance
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.methods.scratch import Scratch, ScratchSettings
from pipeline_lib.tasks.task import Task


def test_trajectory_balance_by_hand() -> None:
    # log Z = 1, sum log P_F = -2, log R = -0.5, sum log P_B = -1: 1 - 2 + 0.5 + 1 = 0.5
    r = trajectory_balance(torch.tensor(1.0), torch.tensor([-2.0]), torch.tensor([-1.0]), torch.tensor([-0.5]))
    assert r.item() == pytest.approx(0.5)


def test_subtrajectory_balance_against_an_explicit_sum() -> None:
    gen = torch.Generator().manual_seed(0)
    log_flow = torch.randn(2, 4, generator=gen)  # trajectories of 3 and 2 transitions (padding after)
    log_step = torch.randn(2, 3, generator=gen)
    length = torch.tensor([3, 2])
    lam = 0.7
    total = 0.0
    for b in range(2):
        n = int(length[b])
        num = den = 0.0
        for i, j in itertools.combinations(range(n + 1), 2):
            res = log_flow[b, i] + log_step[b, i:j].sum() - log_flow[b, j]
            num += lam ** (j - i) * res.item() ** 2
            den += lam ** (j - i)
        total += num / den
    assert subtrajectory_balance(log_flow, log_step, length, lam).item() == pytest.approx(total / 2, rel=1e-6)
    # one transition per trajectory: SubTB is DB (a single pair)
    one = subtrajectory_balance(log_flow[:, :2], log_step[:, :1], torch.tensor([1, 1]), lam)
    assert one.item() == pytest.approx(((log_flow[:, 0] + log_step[:, 0] - log_flow[:, 1]) ** 2).mean().item())


def test_subtrajectory_balance_is_zero_at_a_consistent_flow() -> None:
    log_step = torch.tensor([[-0.3, -1.2, -0.1]])
    log_flow = torch.cat([torch.zeros(1, 1), log_step.cumsum(1)], 1)  # F(s_j) = F(s_i) prod P_F / P_B
    assert subtrajectory_balance(log_flow, log_step, torch.tensor([3]), 0.9).item() == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize("loss", ["db", "tb", "subtb"])
def test_scratch_with_each_loss_learns_the_grid(loss: str) -> None:
    env = HyperGrid(ndim=2, side=4)
    task = Task(env, {"reward": "corner"})
    cfg = ScratchSettings(steps=300, batch_size=32, hidden=64, eval_every=300, loss=loss, lr=3e-3)
    method = Scratch(task, cfg, 0, torch.device("cpu"))
    curve = method.run()
    assert curve["l1"].iloc[-1] < 0.5 * curve["l1"].iloc[0]  # it learns R/Z
    if loss == "tb":
        assert method.log_z.item() != 0.0  # log Z is trained
        z = task.landscape.sum().log().item()
        assert abs(method.log_z.item() - z) < abs(z)


def test_scratch_refuses_an_unknown_loss() -> None:
    assert "takes loss in" in Scratch.unsupported(HyperGrid(2, 4), ScratchSettings(loss="fm"))


def test_tb_resumes_exactly_with_its_log_z(tmp_path) -> None:
    env = HyperGrid(ndim=2, side=4)

    def make(steps: int) -> Scratch:
        cfg = ScratchSettings(steps=steps, batch_size=8, hidden=16, eval_every=3, checkpoint_every=3, loss="tb")
        return Scratch(Task(env, {"reward": "corner"}), cfg, 0, torch.device("cpu"))

    straight = make(6)
    expected = straight.run().drop(columns="seconds")
    ckpt = tmp_path / "scratch.ckpt"
    make(3).run(ckpt)  # stops after its checkpoint at step 3
    resumed = make(6)
    curve = resumed.run(ckpt).drop(columns="seconds")
    assert curve.equals(expected) and resumed.log_z.item() == straight.log_z.item()
    assert resumed.opt.param_groups[1]["params"][0] is resumed.log_z  # the optimiser still trains it
