"""Adaptation variants that train more than the paper's predictor: the amortized predictor with each
trajectory's own terminal as y (Q learned, or tied to N on a tree), N initialised from the OC-GFN trunk,
and fine-tuning the OC-GFN's own weights (against the same architecture from random initialisation)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline_lib import io, plan
from pipeline_lib.config import ConfigError, method_config
from pipeline_lib.core.nets import OutcomeConditionedGFlowNet, OutcomeFree
from pipeline_lib.domains import make_env
from pipeline_lib.domains.sequence.env import Sequence
from pipeline_lib.methods.amortized import Amortized, AmortizedSettings, AutoregressiveQ, CompletionQ, later_transitions
from pipeline_lib.methods.finetuned import FineTuned, FineTunedSettings
from pipeline_lib.ocgfn.sources import CONTROL, GoalReaching, TrainedOCGFN, pretrained_source
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")


def ab_reward(strings: list[str]) -> list[float]:
    """A plug-in reward on strings over {a, b}."""
    return [0.1 + s.count("a") + 2.0 * s.endswith("b") + 0.3 * len(s) for s in strings]


AB_REWARD = f"{Path(__file__).resolve()}:ab_reward"


def tree_task() -> Task:
    return Task(Sequence("ab", 3, 1), {"reward": AB_REWARD, "params": {}}, "resources")


def grid_task(config: dict, task: str = "peaks") -> Task:
    job = plan.target_job(config, "grid6", task)
    return Task(make_env(job["env"]["domain"], job["env"]["params"], CPU), job["task"], job["resources"])


def ocgfn(env, seed: int = 0) -> OutcomeConditionedGFlowNet:
    torch.manual_seed(seed)
    return OutcomeConditionedGFlowNet(env.feature_dim, env.n_actions, env.n_backward_actions, 32, 2, False, "product")


def own(steps: int, **kw) -> AmortizedSettings:
    return AmortizedSettings(steps=steps, eval_every=steps, checkpoint_every=steps, batch_size=32, hidden=64,
                             lr=3e-3, outcomes="own", **kw)


# ------------------------------------------------------------------------ amortized, own terminal as y


@pytest.mark.parametrize("q", ["tied", "learned"])
def test_own_terminal_predictor_learns_a_tiny_tree(q: str) -> None:
    """On a tree the control is the perfect OC-GFN; with y := each trajectory's terminal the predictor's N
    learns the flows, so its policy samples R/Z (one reward call per trajectory)."""
    task = tree_task()
    method = Amortized(task, own(400, q=q), 0, CPU, pretrained=GoalReaching(task.env))
    df = method.run(None)
    assert df["l1"].iloc[-1] < 0.1 < df["l1"].iloc[0]
    assert df["reward_calls"].iloc[-1] == df["trajectories"].iloc[-1] == 400 * 32


def test_own_terminal_predictor_learns_a_tiny_grid(test_config: dict) -> None:
    """On a DAG (categorical Q over the reachable objects) too, with the control's dense tables."""
    task = grid_task(test_config, "corner")
    method = Amortized(task, own(400), 0, CPU, pretrained=GoalReaching(task.env))
    df = method.run(None)
    assert df["l1"].iloc[-1] < 0.5 * df["l1"].iloc[0]
    assert df["reward_calls"].iloc[-1] == 400 * 32


def dag_task() -> Task:
    return Task(Sequence("ab", 3, 1, mode="prepend_append"), {"reward": AB_REWARD, "params": {}}, "resources")


def test_completion_q_is_a_distribution_over_the_outcomes_holding_s() -> None:
    """On a prepend-or-append DAG, Q completes s' in the canonical order (appends, prepends, stop): its exact
    log Q, a log-sum over the offsets where s' sits in y, sums to 1 over every outcome and is 0 off those
    holding s'; and the draws of ``complete`` follow it."""
    task = dag_task()
    env = task.env
    method = Amortized(task, AmortizedSettings(hidden=32, q_epsilon=0.0), 0, CPU, pretrained=GoalReaching(env))
    assert isinstance(method.q, CompletionQ)
    ys = env.terminal_states()
    for start in env.encode(["a", "b", "ab", "aa", "bab"]):
        starts = start[None].expand(len(ys), -1)
        with torch.no_grad():
            q = method.q.log_q(env, starts, ys).exp()
        holds = env.can_reach(starts, ys)
        assert torch.isclose(q.sum(), torch.tensor(1.0), atol=1e-5)
        assert (q[~holds] == 0).all() and (q[holds] > 0).all()
    start = env.encode(["a"]).expand(4000, -1)
    drawn, log_q = method.q.complete(method, start)
    assert env.can_reach(start, drawn).all()
    freq = torch.bincount(env.index(drawn), minlength=env.n_states).float() / len(drawn)
    with torch.no_grad():
        q = method.q.log_q(env, start[:1].expand(len(ys), -1), ys).exp()
    assert (freq[env.index(ys)] - q).abs().max() < 0.03
    assert torch.allclose(log_q, method.q.log_q(env, start, drawn))


@pytest.mark.parametrize("outcomes", ["q", "own"])
def test_completion_q_predictor_learns_a_tiny_dag(outcomes: str) -> None:
    """The amortized predictor on a prepend-or-append DAG with the control (F by DP over each outcome's
    substrings): its policy samples close to R/Z, as on the tree."""
    task = dag_task()
    settings = AmortizedSettings(steps=400, eval_every=400, checkpoint_every=400, batch_size=32, hidden=64, lr=3e-3,
                                 outcomes=outcomes, outcomes_per_transition=2)
    df = Amortized(task, settings, 0, CPU, pretrained=GoalReaching(task.env)).run(None)
    assert df["l1"].iloc[-1] < 0.15 < df["l1"].iloc[0]


def test_completion_q_takes_flow_policy_at_any_size() -> None:
    """F by DP needs each outcome's ancestors, which a prepend-or-append space lists at any size: by state
    index (RNA of 14 bases, not enumerable) or, past an int64 index, by hashed keys (4^40)."""
    rna = Sequence("ACGU", 14, 1, mode="prepend_append")
    assert rna.capabilities()["enumerable"] and Amortized.unsupported(rna, AmortizedSettings(flow="policy")) is None
    big = Sequence("ACGT", 40, 1, mode="prepend_append")
    assert not big.indexable and Amortized.unsupported(big, AmortizedSettings(flow="policy")) is None
    assert Amortized.unsupported(big, AmortizedSettings(flow="learned")) is None


def test_the_own_terminal_predictor_with_f_by_dp_runs_past_an_int64_index() -> None:
    """On prepend-or-append strings of up to 64 tokens (2^64 objects: no int64 state index, hashed ancestors)
    the amortized predictor with F(s|y) by DP over each outcome's substrings trains and counts one reward
    call per trajectory."""
    task = Task(Sequence("ab", 64, 56, mode="prepend_append"), {"reward": AB_REWARD, "params": {},
                "modes": {"kind": "threshold", "threshold": 40.0, "min_distance": 2}}, "resources")
    assert not task.env.indexable
    settings = AmortizedSettings(steps=2, eval_every=2, checkpoint_every=2, batch_size=4, hidden=16,
                                 outcomes="own")
    df = Amortized(task, settings, 0, CPU, pretrained=GoalReaching(task.env)).run(None)
    assert df["reward_calls"].iloc[-1] == 8 and df["loss"].iloc[1:].notna().all()


def test_later_transitions_complete_each_prefix() -> None:
    """The learned autoregressive Q at the own terminal is the sum of Q's log-probabilities of the later
    actions of the same trajectory, with the given part ending at s'; checked against a plain loop."""
    task = tree_task()
    env = task.env
    method = Amortized(task, own(1), 0, CPU, pretrained=GoalReaching(env))
    assert isinstance(method.q, AutoregressiveQ)
    from pipeline_lib.core.rollout import rollout

    traj = rollout(env, method.policy, 16, 0.5, generator=torch.Generator().manual_seed(1))
    t, b, s, a = traj.transitions()
    got = method.q.own_log_q(method, traj, t, b, s, a)
    i, j = later_transitions(traj, t, b)
    assert ((b[i] == b[j]) & (t[j] > t[i])).all()
    for k in range(len(t)):
        later = (b == b[k]) & (t > t[k])
        anchor = env.level(env.step(s[k:k + 1], a[k:k + 1])).expand(int(later.sum()))
        want = method.q.log_probs(env, s[later], anchor).gather(1, a[later][:, None]).sum()
        assert torch.allclose(got[k], want, atol=1e-5)


def test_tied_q_needs_a_tree_and_own_outcomes(test_config: dict) -> None:
    task = grid_task(test_config)
    with pytest.raises(ValueError, match="q: tied only with outcomes: own on a tree"):
        Amortized(task, own(1, q="tied"), 0, CPU, pretrained=GoalReaching(task.env))
    with pytest.raises(ValueError, match="q: tied only with outcomes: own"):
        Amortized(tree_task(), AmortizedSettings(q="tied"), 0, CPU, pretrained=GoalReaching(tree_task().env))


def test_n_from_the_trunk_starts_at_the_ocgfn_policy() -> None:
    """init_n: trunk copies the OC-GFN's networks into N (the outcome input fixed to the mean embedding):
    N's policy is then the OC-GFN's policy for that embedding, and the OC-GFN stays frozen."""
    task = tree_task()
    env = task.env
    model = ocgfn(env)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method = Amortized(task, own(5, init_n="trunk", q="tied"), 0, CPU, pretrained=TrainedOCGFN(env, model))
    assert isinstance(method.n_net, OutcomeFree)
    s = env.all_states()
    es, eo = model.embed_state(env.featurize(s)), method.n_net.outcome.detach().expand(len(s), -1)
    want = model.trunk(torch.cat([es, eo, es * eo], -1))[:, 1:1 + env.n_actions]
    with torch.no_grad():
        assert torch.allclose(method.log_n(env.featurize(s)), want, atol=1e-6)
    method.run(None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not torch.allclose(method.log_n(env.featurize(s)), want)  # N itself trained


# ------------------------------------------------------------------------ fine-tuning the OC-GFN's weights


def saved_model(env, path: Path) -> Path:
    """An OC-GFN model file in the pre-training job's format (the random weights stand in for trained ones)."""
    model = ocgfn(env, seed=7)
    cfg = {"hidden": 32, "layers": 2, "learn_pb": False, "conditioning": "product"}
    io.save_checkpoint({"config": cfg, "env": {}, "state_dict": model.state_dict()}, path)
    return path


def test_finetuned_model_loads_the_pretrained_weights(test_config: dict, tmp_path: Path) -> None:
    task = grid_task(test_config)
    env = task.env
    path = saved_model(env, tmp_path / "model.pt")
    source = pretrained_source("full", str(path), env, CPU)
    cfg = FineTunedSettings(steps=3, eval_every=1, checkpoint_every=3, batch_size=8, loss="tb")
    tuned = FineTuned(task, cfg, 0, CPU, pretrained=source)
    saved = io.load_checkpoint(str(path), CPU)["state_dict"]
    for name, value in tuned.model.state_dict().items():
        if name.startswith(("embed_state", "trunk")):
            assert torch.equal(value, saved[name]), name
    # with the learned embedding set to y's own, the unconditional net is the OC-GFN conditioned on y
    y = env.all_states()[[5]].expand(3, -1)
    s = env.all_states()[:3]
    with torch.no_grad():
        tuned.model.outcome.copy_(source.model.embed_outcome(env.featurize(y))[0])
        log_f, logits, _ = tuned.model(env.featurize(s))
        oc_f, oc_logits, _ = source.model(env.featurize(s), env.featurize(y), torch.zeros(3, dtype=torch.bool))
    assert torch.allclose(logits, oc_logits, atol=1e-6)
    assert torch.allclose(log_f - tuned.model.log_z, oc_f, atol=1e-6)
    assert tuned.starts_from("full") == "full"

    fresh = FineTuned(task, dataclasses.replace(cfg, init="random"), 0, CPU, pretrained=source)
    assert not torch.equal(fresh.model.state_dict()["trunk.0.weight"], saved["trunk.0.weight"])
    assert fresh.model.state_dict()["trunk.0.weight"].shape == saved["trunk.0.weight"].shape
    assert fresh.starts_from("full") == CONTROL  # the no-pre-training row of this kind

    df = tuned.run(None)
    assert df["step"].tolist() == [0, 1, 2, 3] and df["l1"].notna().all()
    assert tuned.log_z.grad is not None and len(tuned.opt.param_groups) == 2
    assert torch.equal(source.model.state_dict()["trunk.0.weight"], saved["trunk.0.weight"])  # a copy was tuned


def test_finetuned_learns_a_tiny_tree() -> None:
    task = tree_task()
    env = task.env
    cfg = FineTunedSettings(steps=300, eval_every=300, checkpoint_every=300, batch_size=32, lr=3e-3, loss="tb")
    df = FineTuned(task, cfg, 0, CPU, pretrained=TrainedOCGFN(env, ocgfn(env))).run(None)
    assert df["l1"].iloc[-1] < 0.1 < df["l1"].iloc[0]


def test_weights_cannot_come_from_the_control(test_config: dict) -> None:
    methods = test_config["finetune"]["methods"]
    methods["tuned_control"] = {"kind": "finetuned", "pretrained": CONTROL}
    with pytest.raises(ConfigError, match="tuned_control.pretrained: fine-tuning starts from a pre-trained"):
        method_config(test_config, "tuned_control", "grid6")
    methods["trunk_control"] = {"kind": "amortized", "pretrained": CONTROL, "settings": {"init_n": "trunk"}}
    with pytest.raises(ConfigError, match="trunk_control.settings.init_n: trunk copies"):
        method_config(test_config, "trunk_control", "grid6")
    task = grid_task(test_config)
    with pytest.raises(ValueError, match="has none"):
        FineTuned(task, FineTunedSettings(), 0, CPU, pretrained=GoalReaching(task.env))


@pytest.mark.parametrize("flow", ["policy", "learned"])
def test_path_table_matches_per_depth_terms(flow: str) -> None:
    """The own-terminal loss reads log F(s|y) + log P_F(s'|s,y) of every prefix of y from one table."""
    from pipeline_lib.ocgfn.tables import path_log_prob_table, path_log_probs

    env = Sequence("ab", 4, 1)
    source = TrainedOCGFN(env, ocgfn(env))
    y = env.terminal_states()
    table = path_log_prob_table(env, source, y, flow)
    for depth in range(env.max_length):
        ok = env.level(y) >= depth
        want = path_log_probs(env, source, y[ok], torch.full((int(ok.sum()),), depth), flow)
        assert torch.allclose(table[ok, depth], want, atol=1e-6)
