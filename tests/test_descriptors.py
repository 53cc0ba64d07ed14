"""Descriptor outcomes, y = phi(x) (beyond the paper): hand-checked descriptors, the learned log F(s0|y)
against exact counts on a tiny space, the exact conversion of a phi-reward against R/Z, the search and the
window sampler, and resume."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline_lib.descriptors import Descriptor, make_descriptor
from pipeline_lib.domains import make_env
from pipeline_lib.methods.outcome_conversion import OutcomeConversion, OutcomeConversionSettings
from pipeline_lib.methods.outcome_search import OutcomeSearch, OutcomeSearchSettings
from pipeline_lib.ocgfn.descriptor import (
    ClassifierPretrainer,
    DescriptorPretrainer,
    RejectionControl,
    outcome_results,
    uniform_logits,
    window_results,
)
from pipeline_lib.ocgfn.pretrain import PretrainConfig
from pipeline_lib.tasks.metrics import empirical_l1
from pipeline_lib.tasks.task import Task

CPU = torch.device("cpu")
ONES = f"{Path(__file__).resolve()}:ones"
ONES_SPEC = {"name": ONES, "dims": ["ones"], "edges": {"ones": [0.5, 1.5, 2.5, 3.5]}}


def ones(objects: list[str]) -> np.ndarray:
    """The number of '1' tokens of each bit string (a plug-in descriptor)."""
    return np.array([[s.count("1")] for s in objects], dtype=float)


def tiny_env():
    return make_env("sequence", {"alphabet": "01", "length": 4, "min_length": 1})


def exact_log_counts(env, desc: Descriptor) -> torch.Tensor:
    y = desc.outcomes(env.terminal_states())
    return torch.bincount(desc.index(y), minlength=desc.size).float().log()


@pytest.fixture(scope="module")
def trained():
    """A descriptor OC-GFN on bit strings of length 1-4, outcomes = the number of ones (5 outcomes); 1000 steps:
    at 500 the rarest outcome's log count was 0.2 off on one host, at 1000 all are within 0.02."""
    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    cfg = PretrainConfig(steps=1000, batch_size=64, hidden=64, layers=2, ot="off", outcomes="descriptor",
                         descriptor_loss="tb", random_goals=0.5, eval_every=250)
    trainer = DescriptorPretrainer(env, cfg, 0, CPU, desc)
    metrics = trainer.run()
    return env, desc, trainer, metrics


def test_descriptor_bins_and_outcome_space_by_hand() -> None:
    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    assert desc.bins == [5] and desc.size == 5 and desc.width == 5
    x = env.encode(["0", "1", "11", "0111", "1111"])
    assert desc.outcomes(x).view(-1).tolist() == [0, 1, 2, 3, 4]
    two = Descriptor("two", ["a", "b"], [[0.0], [1.0, 2.0]], lambda o: np.zeros((len(o), 2)))
    every = two.all_outcomes()
    assert every.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]
    assert two.index(every).tolist() == list(range(6))
    assert two.one_hot(every[4:5]).tolist() == [[0, 1, 0, 1, 0]]
    assert two.binned(np.array([[-1.0, 0.5], [0.0, 1.0], [5.0, 2.0]])).tolist() == [[0, 0], [1, 1], [1, 2]]
    assert two.label(1, 1) == "[1, 2)" and two.label(0, 0) == "[-inf, 0)"


def test_built_in_descriptors_by_hand() -> None:
    amp = make_env("sequence", {"alphabet": "protein", "length": 50, "min_length": 1})
    pep = make_descriptor({"name": "peptide"}, amp)
    values = pep.values(amp.encode(["KKLLKR", "DDEA"]))
    # length; K + R - D - E; mean Kyte-Doolittle: (3 * -3.9 + 2 * 3.8 - 4.5) / 6 and (2 * -3.5 - 3.5 + 1.8) / 4
    assert values[0].tolist() == pytest.approx([6, 4, (3 * -3.9 + 2 * 3.8 - 4.5) / 6])
    assert values[1].tolist() == pytest.approx([4, -3, (2 * -3.5 - 3.5 + 1.8) / 4])
    assert pep.binned(values).tolist() == [[0, 3, 0], [0, 0, 0]]
    mol = make_env("molecule", {"length": 8})
    props = make_descriptor({"name": "properties"}, mol)
    assert props.dims == ["qed", "logp", "tpsa", "rings"] and props.size == 192
    benzene = props.values_of(["c1ccccc1"])[0]  # QED 0.443, Crippen logP 1.687, TPSA 0, one ring
    assert benzene.tolist() == pytest.approx([0.443, 1.6866, 0.0, 1.0], abs=1e-3)
    assert props.binned(benzene[None]).tolist() == [[1, 1, 0, 1]]
    bits = make_descriptor({"name": "composition", "params": {"tokens": "1", "length_edges": [2.5]}}, tiny_env())
    assert bits.values(tiny_env().encode(["011", "1"])).tolist() == [[3, 2 / 3], [1, 1.0]]


def test_descriptor_errors_name_what_is_wrong(tmp_path: Path) -> None:
    env = tiny_env()
    with pytest.raises(ValueError, match="built-in descriptors are"):
        make_descriptor({"name": "nope"}, env)
    with pytest.raises(ValueError, match="needs dims"):
        make_descriptor({"name": ONES}, env)
    with pytest.raises(ValueError, match="edges missing for \\['ones'\\]"):
        make_descriptor({"name": ONES, "dims": ["ones"]}, env)
    with pytest.raises(ValueError, match="strictly increasing"):
        make_descriptor({**ONES_SPEC, "edges": {"ones": [2, 1]}}, env)
    with pytest.raises(ValueError, match="edges for unknown dimensions"):
        make_descriptor({"name": "peptide", "edges": {"mass": [1]}}, env)
    desc = make_descriptor(ONES_SPEC, env)
    with pytest.raises(ValueError, match="contains no whole bin"):
        desc.window_outcomes({"ones": [0.6, 1.4]})
    assert desc.window_outcomes({"ones": [1.5, 9]}).tolist() == [False, False, True, True, False]
    assert desc.window_outcomes({"ones": [1.5, float("inf")]}).tolist() == [False, False, True, True, True]
    # a raw value is inside where its outcome is: 3.5 lies in the bin [3.5, inf), beyond the window's bound 3.5,
    # and 1.2 in [0.5, 1.5), which the window holds only in part
    values = np.array([[2.0], [3.49], [3.5], [1.2], [np.nan]])
    assert desc.in_window(values, {"ones": [1.0, 3.5]}).tolist() == [True, True, False, False, False]
    with pytest.raises(ValueError, match="dims lists a plug-in's values; this built-in has fixed dimensions"):
        make_descriptor({"name": "peptide", "dims": ["charge"]}, env)


def test_classifier_flows_learn_the_exact_counts() -> None:
    """descriptor_loss: classifier on the same tiny space: the policy uniform over objects it trains from is
    exact (its terminal distribution is 1/|X|), and log C(s0) + log P_U(y | s0) is the count."""
    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    log_p = torch.log_softmax(uniform_logits(env, env.all_states()), -1)
    from pipeline_lib.core.exact import StateGraph, terminal_distribution

    uniform = terminal_distribution(StateGraph.build(env), log_p)[env.index(env.terminal_states())]
    assert torch.allclose(uniform, torch.full_like(uniform, 1 / 30))  # 2 + 4 + 8 + 16 objects
    assert env.log_completions(env.initial_states(1)).exp().item() == pytest.approx(30)
    cfg = PretrainConfig(steps=500, batch_size=128, hidden=64, layers=2, ot="off", outcomes="descriptor",
                         eval_every=250, descriptor_samples=16, lr=3e-3, lr_decay=0.05)
    trainer = ClassifierPretrainer(env, cfg, 0, CPU, desc)
    metrics = trainer.run()
    table = outcome_results(trainer.source(), 16, torch.Generator().manual_seed(1))
    assert np.abs(table["log_count"].to_numpy() - exact_log_counts(env, desc).numpy()).max() < 0.2
    assert metrics["success_sample"].iloc[-1] > 0.9 and metrics["outcome_coverage"].iloc[-1] == 1.0
    prepend = make_env("sequence", {"alphabet": "01", "length": 3, "mode": "prepend_append"})
    with pytest.raises(ValueError, match="descriptor_loss: tb"):
        ClassifierPretrainer(prepend, cfg, 0, CPU, make_descriptor(ONES_SPEC, prepend))


def test_the_last_decision_is_exact_with_an_untrained_classifier() -> None:
    """descriptor_boundary: exact: from a state one token short of the maximum, every move's child is an object
    and phi says which have y: all the mass goes to those (and to stopping where the state itself has y), by
    hand on '011' (ones: stop 2, +'0' 2, +'1' 3). Where no option has y the learned logits stay."""
    from pipeline_lib.ocgfn.descriptor import ClassifierModel, OutcomeClassifier

    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    torch.manual_seed(0)
    net = OutcomeClassifier(env.feature_dim, env.n_actions, desc.size, 16, 1).requires_grad_(False)
    exact, learned = (ClassifierModel(env, net, desc, torch.ones(desc.size), e) for e in (True, False))
    s = env.encode(["011"]).repeat(3, 1)
    y = torch.tensor([[2], [3], [4]])
    mask = env.forward_mask(s)
    p = exact.policy(y)(s, torch.arange(3), mask).exp()
    zero, one = (env.encode([f"011{t}"]) for t in "01")
    to = {a: env.step(s[:1], torch.tensor([a])) for a in range(env.n_actions) if a != env.stop}
    a0 = next(a for a, c in to.items() if torch.equal(c, zero))
    a1 = next(a for a, c in to.items() if torch.equal(c, one))
    assert p[0, env.stop] + p[0, a0] == pytest.approx(1.0) and p[0, a1] < 1e-6 and p[0, env.stop] > 0
    assert p[1, a1] == pytest.approx(1.0)
    assert torch.allclose(p[2], learned.policy(y)(s, torch.arange(3), mask).exp()[2])  # four ones: out of reach
    # earlier decisions are the classifier's: nothing below '0' is an object with no further move
    first = env.encode(["0"])
    first_mask = env.forward_mask(first)
    assert torch.allclose(exact.policy(y[:1])(first, torch.arange(1), first_mask),
                          learned.policy(y[:1])(first, torch.arange(1), first_mask))


def test_state_features_and_a_saved_classifier_keep_both_options(tmp_path: Path) -> None:
    """phi of partial objects by hand ('011': two ones, bin 2 of 5, scaled (2 - 0.5) / (3.5 - 0.5); the
    initial state zeros), and a model file written as the pretrain stage writes it loads back reading phi
    and with the exact boundary, drawing what the trained source draws."""
    import dataclasses

    from pipeline_lib import io
    from pipeline_lib.ocgfn.descriptor import load_descriptor_model, model_entries

    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    feats = desc.state_features(torch.cat([env.initial_states(1), env.encode(["011"])]))
    assert feats.shape == (2, desc.width + 1) and desc.feature_width == 6
    assert feats[0].tolist() == [0.0] * 6 and feats[1].tolist() == [0, 0, 1, 0, 0, 0.5]
    cfg = PretrainConfig(steps=2, batch_size=8, hidden=16, layers=1, ot="off", outcomes="descriptor",
                         eval_every=2, descriptor_samples=2, descriptor_boundary="exact", state_descriptor=True)
    trainer = ClassifierPretrainer(env, cfg, 0, CPU, desc)
    trainer.run()
    assert trainer.model.net[0].in_features == env.feature_dim + desc.feature_width
    io.save_checkpoint({"config": dataclasses.asdict(cfg), "state_dict": trainer.model.state_dict(),
                        **model_entries(trainer, ONES_SPEC)}, tmp_path / "m.pt")
    loaded = load_descriptor_model(str(tmp_path / "m.pt"), env, CPU)
    assert loaded.exact and loaded.model.descriptor is not None
    y = desc.all_outcomes().repeat(4, 1)
    assert torch.equal(loaded.draw(y, torch.Generator().manual_seed(2)),
                       trainer.source().draw(y, torch.Generator().manual_seed(2)))
    whole = Descriptor("whole", ["n"], [[1.0]], lambda o: [[len(s) if len(s) > 1 else np.nan] for s in o], env)
    with pytest.raises(ValueError, match="state_descriptor: false"):
        whole.state_features(env.encode(["0"]))


def test_learned_log_count_matches_the_exact_count(trained) -> None:
    env, desc, trainer, metrics = trained
    table = outcome_results(trainer.source(), 16, torch.Generator().manual_seed(1))
    exact = exact_log_counts(env, desc)  # C(1..4, k) summed over lengths: 4, 10, 10, 5, 1
    assert exact.exp().round().tolist() == [4, 10, 10, 5, 1]
    assert np.abs(table["log_count"].to_numpy() - exact.numpy()).max() < 0.2
    assert (table["success_sample"] > 0.9).all() and metrics["outcome_coverage"].iloc[-1] == 1.0
    assert metrics["success_sample"].iloc[-1] > 0.9


def phi_task(env, prefer: list[float]) -> Task:
    params = {"descriptor": ONES, "dims": ["ones"], "edges": ONES_SPEC["edges"], "prefer": {"ones": prefer}}
    return Task(env, {"name": "phi", "reward": "pipeline_lib.descriptors:binned_reward", "params": params})


def test_exact_conversion_of_a_phi_reward_matches_r_over_z(trained) -> None:
    env, desc, trainer, _ = trained
    task = phi_task(env, [0.0, 0.5, 1.0, 2.0, 3.0])
    x = env.encode(["0", "1111"])
    assert torch.as_tensor(task.reward(x)).tolist() == pytest.approx([1.0, float(np.exp(3.0))])
    method = OutcomeConversion(task, OutcomeConversionSettings(), 0, CPU, trainer.source())
    method.run(None)
    assert task.oracle.unique_calls <= desc.size  # one reward call per outcome, no training
    target = torch.zeros(desc.size).index_add(0, desc.index(desc.outcomes(env.terminal_states())),
                                              task.target[env.index(env.terminal_states())])
    assert (torch.softmax(method.weights(), 0) - target).abs().sum() < 0.05  # R(y) F(s0|y) / Z vs the exact
    exact = method.exact_metrics()
    assert exact["outcome_l1"] < 0.08 and exact["outcome_l1_exact"] < 0.1
    samples = method.sample(20000, torch.Generator().manual_seed(3))
    # objects too: R(x) / Z within the conditional sampler's own error (0.11 measured; random objects: 0.99)
    assert empirical_l1(env, samples, task.target) < 0.15
    assert empirical_l1(env, env.random_outcomes(20000, torch.Generator().manual_seed(3)), task.target) > 0.5


def test_control_and_search_run_through_the_oracle(trained) -> None:
    env, desc, trainer, _ = trained
    control = RejectionControl(env, desc, 2000, torch.Generator().manual_seed(0))
    assert control.known().all()
    y = desc.all_outcomes()
    x, hit = control.sample(y, torch.Generator().manual_seed(1))
    assert hit.all() and (desc.outcomes(x) == y).all()
    task = phi_task(env, [0.0, 0.0, 0.0, 0.0, 4.0])
    search = OutcomeSearch(task, OutcomeSearchSettings(steps=6, batch_size=16, eval_every=3), 0, CPU,
                           trainer.source())
    curve = search.run(None)
    assert curve["unique_reward_calls"].is_monotonic_increasing and curve["reward_calls"].iloc[-1] == 96
    # the one object with four ones (R = e^4) is the best found; the weights favour its outcome
    assert curve["max_reward"].iloc[-1] == pytest.approx(float(np.exp(4.0)))
    assert int(search.weights().argmax()) == 4
    with_control = OutcomeConversion(task, OutcomeConversionSettings(pool=2000), 0, CPU, desc)
    assert isinstance(with_control.source, RejectionControl) and task.oracle.unique_calls >= 1


def test_window_sampler_stays_inside_without_reward_calls(trained) -> None:
    env, desc, trainer, _ = trained
    table, objects = window_results(env, trainer.source(), {"many": {"ones": [1.5, float("inf")]},
                                                             "none": {"ones": [-float("inf"), 0.5]}},
                                    500, torch.Generator().manual_seed(0))
    # the objects handed back: 500 per window, their descriptor recomputed from the strings by hand
    assert objects.groupby("window").size().to_dict() == {"many": 500, "none": 500}
    assert (objects["phi_ones"] == objects["sequence"].str.count("1")).all()
    assert objects.groupby("window")["in_window"].mean().to_dict() == pytest.approx(
        table.set_index("window")["in_window"].to_dict())
    many = table.set_index("window").loc["many"]
    assert many["window_outcomes"] == 3 and many["in_window"] > 0.9 and many["validity"] == 1.0
    assert 0 < many["uniqueness"] <= 1
    assert table.set_index("window").loc["none", "in_window"] > 0.9
    # the sampler's draws are those it makes without the control beside it
    again, _ = window_results(env, trainer.source(), {"many": {"ones": [1.5, float("inf")]}}, 500,
                              torch.Generator().manual_seed(0))
    assert again.loc[0, "in_window"] == many["in_window"]
    # the control: random objects inside each window, as an independent draw of them measures it
    for name, window in {"many": {"ones": [1.5, float("inf")]}, "none": {"ones": [-float("inf"), 0.5]}}.items():
        uniform = env.random_outcomes(4000, torch.Generator().manual_seed(7))
        expected = float(desc.in_window(desc.values(uniform), window).mean())
        row = table.set_index("window").loc[name]
        assert row["random_in_window"] == pytest.approx(expected, abs=0.08)
        assert row["lift"] == pytest.approx(row["in_window"] / row["random_in_window"])
    assert table.set_index("window").loc["none", "lift"] > 2  # zero ones is rare among uniform strings


def coordinate_sum(objects: torch.Tensor) -> np.ndarray:
    """x0 + x1 of grid cells (a plug-in descriptor on a domain whose describe has an ``outcome`` column)."""
    return objects.sum(-1, keepdim=True).numpy().astype(float)


def test_window_samples_keep_the_objects_own_columns() -> None:
    env = make_env("hypergrid", {"ndim": 2, "side": 4})
    desc = make_descriptor({"name": f"{Path(__file__).resolve()}:coordinate_sum", "dims": ["total"],
                            "edges": {"total": [2.5, 4.5]}}, env)
    source = RejectionControl(env, desc, 2000, torch.Generator().manual_seed(0))
    table, objects = window_results(env, source, {"far": {"total": [4.5, float("inf")]}}, 400,
                                    torch.Generator().manual_seed(3))
    cells = torch.tensor(objects[["x0", "x1"]].to_numpy())
    assert (objects["outcome"] == (cells[:, 0] * 4 + cells[:, 1]).numpy()).all()  # the grid's cell index
    assert (objects["window_outcome"] == 2).all() and (objects["phi_total"] == cells.sum(1).numpy()).all()
    assert objects["in_window"].all() and table.loc[0, "in_window"] == 1.0
    # 3 of the 16 cells have x0 + x1 >= 5
    assert table.loc[0, "random_in_window"] == pytest.approx(3 / 16, abs=0.06)
    assert table.loc[0, "lift"] == pytest.approx(1 / table.loc[0, "random_in_window"])


def test_descriptor_pretraining_resumes_exactly(tmp_path: Path) -> None:
    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    for cls, loss in ((DescriptorPretrainer, "tb"), (ClassifierPretrainer, "classifier")):
        cfg = PretrainConfig(steps=4, batch_size=8, hidden=16, layers=1, ot="off", outcomes="descriptor",
                             descriptor_loss=loss, random_goals=0.5, eval_every=2, checkpoint_every=2,
                             descriptor_samples=2)
        full = cls(env, cfg, 1, CPU, desc).run(tmp_path / f"{loss}a.ckpt")
        part = cls(env, cfg, 1, CPU, desc)
        part.steps = 2
        part.run(tmp_path / f"{loss}b.ckpt")
        resumed = cls(env, cfg, 1, CPU, desc).run(tmp_path / f"{loss}b.ckpt")
        pd.testing.assert_frame_equal(resumed.drop(columns="seconds"), full.drop(columns="seconds"))


def test_descriptor_pretraining_refuses_what_it_cannot_do() -> None:
    env = tiny_env()
    desc = make_descriptor(ONES_SPEC, env)
    with pytest.raises(ValueError, match="no reachability test"):
        DescriptorPretrainer(env, PretrainConfig(outcomes="descriptor"), 0, CPU, desc)  # ot: reachable


def descriptor_config() -> dict:
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "config/seqtest.yaml").read_text())
    config["envs"] = {"bits": {"domain": "sequence", "params": {"alphabet": "bits2", "length": 4, "min_length": 1},
                               "descriptor": dict(ONES_SPEC), "tasks": ["phi"], "variants": ["desc"],
                               "methods": ["conv"]}}
    config["tasks"]["phi"] = {"reward": "pipeline_lib.descriptors:binned_reward",
                              "params": {"descriptor": ONES, "dims": ["ones"], "edges": ONES_SPEC["edges"],
                                         "prefer": {"ones": [0, 1, 2, 3, 4]}}}
    config["pretrain"]["variants"]["desc"] = {"outcomes": "descriptor", "ot": "off"}
    config["finetune"]["methods"]["conv"] = {"kind": "outcome_conversion", "pretrained": "desc"}
    return config


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["envs"]["bits"].pop("descriptor"), "envs.bits.descriptor: method 'conv'"),
    (lambda c: (c["finetune"]["methods"]["exact"].update(pretrained="desc"), c["envs"]["bits"].update(
        methods=["exact"])), "variant 'desc' conditions on descriptors"),
    (lambda c: (c["finetune"]["methods"]["conv"].update(pretrained="full"), c["envs"]["bits"].update(
        variants=["desc", "full"])), "adapts a variant with outcomes: descr"),
    (lambda c: c["pretrain"]["variants"]["desc"].update(ot="reachable"), "pretrain.variants.desc.ot: 'reachable'"),
    (lambda c: c["pretrain"]["variants"]["desc"].update(outcomes="bins"), "outcomes: expected one of"),
    (lambda c: c["envs"]["bits"]["descriptor"].update(windows={"w": {"ones": [0.6, 1.4]}}),
     "envs.bits.descriptor: windows.w: .*contains no whole bin"),
    (lambda c: c["envs"]["bits"]["descriptor"].update(name="nope"), "envs.bits.descriptor: descriptor 'nope'"),
    (lambda c: c["envs"]["bits"]["params"].update(mode="prepend_append"),  # a DAG: refused before any job
     "pretrain.settings.descriptor_loss: 'classifier' on bits needs the 'tree' capability.*use descriptor_loss: tb"),
])
def test_descriptor_config_errors_name_the_key(edit, message: str) -> None:
    from pipeline_lib.config import ConfigError, check

    config = descriptor_config()
    check(config)  # the valid one passes
    edit(config)
    with pytest.raises(ConfigError, match=message):
        check(config)
