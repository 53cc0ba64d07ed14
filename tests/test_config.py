"""The shipped configs validate; bad configs fail with a message naming the key (schema, then check)."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from pipeline_lib.config import (
    ConfigError,
    check,
    method_config,
    pretrain_config,
    read_numbers,
    read_yaml,
)
from pipeline_lib.domains import DOMAINS
from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.methods import METHODS
from pipeline_lib.methods.amortized import AmortizedSettings
from pipeline_lib.methods.dqn import DQNSettings
from pipeline_lib.methods.exact_conversion import ExactSettings
from pipeline_lib.methods.scratch import ScratchSettings
from pipeline_lib.ocgfn.pretrain import PretrainConfig
from pipeline_lib.tasks.modes import ExactModes
from pipeline_lib.tasks.task import Task

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def load_config(name: str) -> dict:
    """A shipped config, validated against the schema (which fills defaults)."""
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_shipped_configs_validate_and_check(name: str) -> None:
    config = load_config(name)
    check(config)


def test_schema_fills_defaults(test_config: dict) -> None:
    assert test_config["pretrain"]["threads"] == 1
    assert test_config["finetune"]["methods"]["scratch"]["settings"] == {}
    assert "flow" not in test_config["finetune"]["methods"]["exact"]  # method_config supplies flow: policy
    assert test_config["envs"]["grid6"]["finetune"] == {} and test_config["resources"] == "resources"
    raw = {"envs": {"g": {"domain": "hypergrid", "params": {"ndim": 2, "side": 3}, "tasks": []}}, "tasks": {},
           "finetune": {"methods": {"mcmc": {"kind": "mcmc"}}}}
    validate(raw, SCHEMA)
    assert raw["results"] == "results" and raw["device"] == "auto" and raw["seeds"] == [0]
    assert raw["pretrain"]["variants"] == {"full": {"ot": "reachable", "contrastive": True}}
    assert raw["evaluate"]["samples"] == 10000


def test_pretrain_and_method_config_values(test_config: dict) -> None:
    cfg = pretrain_config(test_config, "no_ot")
    assert isinstance(cfg, PretrainConfig)
    assert (cfg.steps, cfg.batch_size, cfg.hidden, cfg.ot, cfg.contrastive) == (60, 16, 32, "off", True)
    assert cfg.log_eps_fail == -10.0  # untouched defaults survive
    entry, settings = method_config(test_config, "scratch")
    assert entry["kind"] == "scratch" and type(settings) is ScratchSettings  # the method's own Settings class
    assert (settings.steps, settings.eval_every, settings.hidden) == (40, 20, 32)
    assert not hasattr(settings, "flow") and settings.lr == 1e-3  # untouched defaults survive
    _, exact = method_config(test_config, "exact", "grid6")
    assert exact == ExactSettings(flow="policy")  # no training settings: the shared ones do not reach it
    _, amortized = method_config(test_config, "amortized", "grid6")
    assert type(amortized) is AmortizedSettings and (amortized.steps, amortized.flow) == (40, "policy")
    test_config["finetune"]["methods"]["amortized"]["flow"] = "learned"
    assert method_config(test_config, "amortized")[1].flow == "learned"
    test_config["finetune"]["methods"]["scratch"]["settings"] = {"steps": 7, "lr": 1}  # int for a float: fine
    _, settings = method_config(test_config, "scratch")
    assert settings.steps == 7 and settings.lr == 1 and settings.batch_size == 16
    test_config["envs"]["grid6"]["finetune"] = {"steps": 9, "batch_size": 4}  # the env's overrides, then the method's
    _, settings = method_config(test_config, "scratch", "grid6")
    assert (settings.steps, settings.batch_size) == (7, 4)


def test_task_of_a_config_entry_binds_its_reward(test_config: dict) -> None:
    """A task entry of the config (reward, params, modes) on its environment: the bound reward takes the
    entry's params and the grid's side; test.yaml's relative modes are the cells with R >= max R / 2."""
    env = HyperGrid(ndim=2, side=6)
    task = Task(env, test_config["tasks"]["corner"])
    r = task.reward(env.all_states())
    assert r.shape == (36,) and r.min().item() == pytest.approx(0.1)  # params: {r0: 0.1}
    assert isinstance(task.oracle.modes, ExactModes)
    assert task.oracle.modes.total == int((r >= r.max() / 2).sum()) > 0 and task.oracle.calls == 0
    with pytest.raises(ValueError, match="reward 'ring2' is not a reward of this domain"):
        Task(env, {"reward": "ring2"})


def raises_config(config: dict, *patterns: str) -> str:
    with pytest.raises(ConfigError) as info:
        check(config)
    message = str(info.value)
    for pattern in patterns:
        assert pattern in message, message
    return message


def test_unknown_env_task(test_config: dict) -> None:
    test_config["envs"]["grid6"]["tasks"].append("ring")
    raises_config(test_config, "envs.grid6.tasks", "unknown task 'ring'")


def test_unknown_pretrained_variant(test_config: dict) -> None:
    test_config["finetune"]["methods"]["exact"]["pretrained"] = "fulll"
    raises_config(test_config, "finetune.methods.exact.pretrained", "'fulll'", "['full', 'no_ot']")


def test_missing_pretrained_variant(test_config: dict) -> None:
    del test_config["finetune"]["methods"]["amortized"]["pretrained"]
    raises_config(test_config, "finetune.methods.amortized.pretrained", "None")


def test_an_empty_variants_or_methods_list_runs_none(test_config: dict) -> None:
    from pipeline_lib import plan

    grid = test_config["envs"]["grid6"]
    grid["variants"] = []
    grid["methods"] = ["exact_control", "scratch"]  # the control and baselines need no pre-trained model
    check(test_config)
    assert plan.pretrain_jobs(test_config) == []  # a baselines-only domain pays no pre-training
    assert not [f for f in plan.figures(test_config) if f[0].startswith("pretrain")]
    assert {m for _, _, m, _ in plan.adaptation_jobs(test_config)} == {"exact_control", "scratch"}
    grid["methods"] = []
    check(test_config)
    assert plan.adaptation_jobs(test_config) == []
    del grid["methods"]  # absent: every method, and exact needs the pre-trained 'full' this domain no longer has
    raises_config(test_config, "finetune.methods.", ".pretrained", "pre-trained on grid6 []")


def test_numbers_in_scientific_notation_without_a_dot_are_numbers(test_config: dict) -> None:
    raw = yaml.safe_load("a: 1e-3\nb: [2E5, '-1.5e+2', 1.0e-3, 1e, e5, x1e3, '7']\nc: {d: .5e1, e: '1e-3 '}\n")
    assert raw["a"] == "1e-3"  # what YAML 1.1 (Snakemake, PyYAML) reads
    read_numbers(raw)
    assert raw == {"a": 1e-3, "b": [2e5, -150.0, 1e-3, "1e", "e5", "x1e3", "7"], "c": {"d": 5.0, "e": 1e-3}}
    test_config["finetune"]["settings"]["lr"] = "1e-3"
    test_config["tasks"]["corner"]["params"]["r0"] = "1e-1"  # a reward's params are read the same way
    read_numbers(test_config)
    validate(test_config, SCHEMA)
    check(test_config)
    assert method_config(test_config, "scratch")[1].lr == 1e-3 and test_config["tasks"]["corner"]["params"]["r0"] == 0.1


def test_a_repeated_key_in_a_config_file_is_refused_with_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("envs:\n  g:\n    tasks: [a]\n    params: {}\n    tasks: [b]\n")
    with pytest.raises(ConfigError, match=r"c.yaml, line 5: duplicate key 'tasks' \(first at line 3\)"):
        read_yaml(path)
    path.write_text("base: &b {steps: 1, lr: 0.1}\nenv: {<<: *b, steps: 2}\n")  # a merge key's keys may be overridden
    assert read_yaml(path) == {"base": {"steps": 1, "lr": 0.1}, "env": {"steps": 2, "lr": 0.1}}


def test_broken_yaml_is_named_with_its_line_and_column(tmp_path: Path) -> None:
    """Snakemake reports it only as "not valid JSON or YAML"; the Snakefile (default config) and
    ``python -m pipeline_lib.config FILE`` (any config) name where."""
    path = tmp_path / "c.yaml"
    path.write_text("seeds: [0]\nevaluate:\n  samples: [500\nenvs: {}\n")
    with pytest.raises(ConfigError, match=r"c.yaml, line 4, column 5: not valid YAML: expected ',' or ']'"):
        read_yaml(path)
    run = subprocess.run([sys.executable, "-m", "pipeline_lib.config", str(path)], capture_output=True, text=True)
    assert run.returncode == 1 and "c.yaml, line 4, column 5: not valid YAML" in run.stderr
    path.write_text("seeds: [0]\n")  # valid YAML, but no envs: the schema's message, with the file
    run = subprocess.run([sys.executable, "-m", "pipeline_lib.config", str(path)], capture_output=True, text=True)
    assert run.returncode == 1 and "c.yaml: invalid config: the top level: 'envs' is a required property" in run.stderr
    path.write_text(yaml.safe_dump({"envs": {"g": {"domain": "hypergrid", "params": {"ndim": 2, "side": 3},
                                                   "tasks": ["r"]}},
                                    "tasks": {"r": {"reward": "corner", "params": {"r0": -1.0}}},
                                    "finetune": {"methods": {"mcmc": {"kind": "mcmc"}}}}))
    run = subprocess.run([sys.executable, "-m", "pipeline_lib.config", str(path)], capture_output=True, text=True)
    assert run.returncode == 1 and "c.yaml: invalid config: tasks.r.params: " in run.stderr  # the full check
    path.write_text(path.read_text().replace("-1.0", "0.1"))
    run = subprocess.run([sys.executable, "-m", "pipeline_lib.config", str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and "c.yaml: valid (YAML, schema, keys and values, domains, rewards" in run.stdout


def test_unknown_pretrain_setting(test_config: dict) -> None:
    test_config["pretrain"]["variants"]["full"]["lerning_rate"] = 0.1
    raises_config(test_config, "pretrain.variants.full: unknown key", "lerning_rate")


def test_unknown_shared_pretrain_setting(test_config: dict) -> None:
    test_config["pretrain"]["settings"]["stepz"] = 3
    raises_config(test_config, "pretrain.settings: unknown key", "stepz")


def test_unknown_finetune_setting(test_config: dict) -> None:
    test_config["finetune"]["methods"]["scratch"]["settings"] = {"epsilom": 0.1}
    raises_config(test_config, "finetune.methods.scratch.settings: unknown key", "epsilom")


@pytest.mark.parametrize("section,key,value,expected", [
    ("pretrain", "steps", -5, "steps: expected a positive number, got -5"),
    ("pretrain", "steps", 0, "steps: expected a positive number, got 0"),
    ("pretrain", "lr", -1e-3, "lr: expected a positive number"),
    ("finetune", "steps", -5, "steps: expected a positive number, got -5"),
    ("finetune", "batch_size", 0, "batch_size: expected a positive number"),
    ("pretrain", "steps", "many", "steps: expected int, got 'many'"),
    ("pretrain", "steps", 2.5, "steps: expected int, got 2.5"),
    ("pretrain", "steps", True, "steps: expected int, got True"),
    ("pretrain", "learn_pb", 1, "learn_pb: expected bool, got 1"),
    ("finetune", "lr", "fast", "lr: expected float, got 'fast'"),
])
def test_bad_setting_values(test_config: dict, section: str, key: str, value, expected: str) -> None:
    test_config[section]["settings"][key] = value
    raises_config(test_config, f"{section}.settings.{expected}")


def test_shared_finetune_settings_reach_the_methods_that_have_them(test_config: dict) -> None:
    """finetune.settings is shared: each method takes the keys its own Settings has (buffer_size reaches DQN
    and is no error for scratch or exact); a key no method has is refused, as is a wrong value of a key the
    configured methods do not use."""
    test_config["finetune"]["methods"]["dqn"] = {"kind": "dqn"}
    test_config["finetune"]["settings"].update({"buffer_size": 123, "target_every": 7})
    check(test_config)
    _, dqn = method_config(test_config, "dqn", "grid6")
    assert type(dqn) is DQNSettings and (dqn.buffer_size, dqn.target_every, dqn.steps) == (123, 7, 40)
    _, scratch = method_config(test_config, "scratch", "grid6")
    assert not hasattr(scratch, "buffer_size") and scratch.steps == 40
    test_config["envs"]["grid6"]["finetune"] = {"buffer_size": 5}  # an env override reaches DQN the same way
    assert method_config(test_config, "dqn", "grid6")[1].buffer_size == 5
    test_config["finetune"]["settings"]["bufer_size"] = 10
    raises_config(test_config, "finetune.settings: unknown key(s) ['bufer_size']", "the methods' settings are",
                  "'buffer_size'")
    del test_config["finetune"]["settings"]["bufer_size"]
    test_config["envs"]["grid6"]["finetune"] = {"epsilom": 0.1}
    raises_config(test_config, "envs.grid6.finetune: unknown key(s) ['epsilom']")
    test_config["envs"]["grid6"]["finetune"] = {}
    del test_config["finetune"]["methods"]["dqn"]
    test_config["finetune"]["settings"]["buffer_size"] = "big"  # checked though no configured method uses it
    raises_config(test_config, "finetune.settings.buffer_size: expected int, got 'big'")


def test_a_method_setting_it_does_not_have_is_refused(test_config: dict) -> None:
    """Unlike the shared settings, a method's own settings must all be its fields."""
    test_config["finetune"]["methods"]["scratch"]["settings"] = {"buffer_size": 10}
    raises_config(test_config, "finetune.methods.scratch.settings: unknown key(s) ['buffer_size']")
    test_config["finetune"]["methods"]["scratch"]["settings"] = {"lr": 0.0}
    raises_config(test_config, "finetune.methods.scratch.settings.lr: expected a positive number")


def test_flow_only_for_methods_with_a_flow_source(test_config: dict) -> None:
    test_config["finetune"]["methods"]["scratch"]["flow"] = "learned"
    raises_config(test_config, "finetune.methods.scratch.flow: kind 'scratch' takes no flow source")


@pytest.mark.parametrize("layer", ["shared", "entry"])
def test_a_flow_under_settings_is_refused_not_replaced(test_config: dict, layer: str) -> None:
    """flow is a key of the method entry; under settings it was replaced by the entry's (default policy) in silence."""
    if layer == "shared":
        test_config["finetune"].setdefault("settings", {})["flow"] = "learned"
        expected = "finetune.settings.flow: the flow source is a key of each method entry"
    else:
        test_config["finetune"]["methods"]["exact"]["settings"] = {"flow": "learned"}
        expected = "finetune.methods.exact.settings.flow: the flow source is a key of each method entry"
    raises_config(test_config, expected)


def test_unknown_method_kind_names_the_registry(test_config: dict) -> None:
    """The schema leaves kind open; check() refuses a kind that is not in the method registry, listing it."""
    test_config["finetune"]["methods"]["exact"]["kind"] = "magic"
    message = raises_config(test_config, "finetune.methods.exact.kind: unknown method kind 'magic'",
                            f"expected one of {sorted(METHODS)}")
    assert all(kind in message for kind in ("exact", "amortized", "scratch", "mcmc", "dqn"))


def test_negative_values_allowed_where_meaningful(test_config: dict) -> None:
    test_config["pretrain"]["settings"].update({"log_eps_fail": -5.0, "negative_epsilon": 0.0})
    test_config["finetune"]["settings"].update({"epsilon": 0.0, "q_epsilon": 0.0})
    check(test_config)


@pytest.mark.parametrize("ot", ["sometimes", "Reachable", False])
def test_bad_ot(test_config: dict, ot) -> None:
    test_config["pretrain"]["variants"]["no_ot"]["ot"] = ot  # unquoted YAML `off` would be False
    raises_config(test_config, "pretrain.variants.no_ot.ot")


def test_a_bad_value_that_every_variant_overrides_is_still_named(test_config: dict) -> None:
    """Each variant of config/test.yaml sets its own ot: a typo in the shared settings or an environment's
    overrides would never reach a job, and stays a typo (a later variant without ot would read it)."""
    test_config["pretrain"]["settings"]["ot"] = "bogus"
    raises_config(test_config, "pretrain.settings.ot: expected one of")
    del test_config["pretrain"]["settings"]["ot"]
    test_config["envs"]["grid6"]["pretrain"] = {"conditioning": "pair"}
    raises_config(test_config, "envs.grid6.pretrain.conditioning: expected one of")


def test_reward_plugin_returning_nan(test_config: dict, tmp_path: Path) -> None:
    path = tmp_path / "nan_reward.py"
    path.write_text("import torch\n\ndef f(x):\n    r = torch.ones(len(x))\n    r[-1] = float('nan')\n"
                    "    return r\n")
    test_config["tasks"]["broken"] = {"reward": f"{path}:f", "params": {},
                                      "modes": {"kind": "relative", "fraction": 0.5}}
    test_config["envs"]["grid6"]["tasks"].append("broken")
    raises_config(test_config, "tasks.broken", "NaN")


def test_reward_plugin_raising(test_config: dict, tmp_path: Path) -> None:
    path = tmp_path / "raising_reward.py"
    path.write_text("def f(x, power):\n    return (x.sum(-1) + 1.0) ** power\n")
    test_config["tasks"]["plug"] = {"reward": f"{path}:f", "params": {"power": 2}}  # default modes: relative
    test_config["envs"]["grid6"]["tasks"].append("plug")
    check(test_config)  # a good plug-in passes
    test_config["tasks"]["plug"]["params"] = {"pow": 2}
    raises_config(test_config, "tasks.plug.params: pow: unknown parameter of reward", "expected some of ['power']")
    test_config["tasks"]["plug"]["params"] = {"power": "two"}  # no hints: the reward's own failure, with its params
    raises_config(test_config, "tasks.plug.reward: reward", "TypeError", "(its params: {'power': 'two'})")


def test_reward_neither_registered_nor_path(test_config: dict) -> None:
    test_config["tasks"]["corner"]["reward"] = "cornerr"
    raises_config(test_config, "tasks.corner.reward: reward 'cornerr' is not a reward of this domain",
                  "['corner', 'peaks', 'ring']", "plug-in")


def test_reward_path_missing_file(test_config: dict, tmp_path: Path) -> None:
    test_config["tasks"]["corner"]["reward"] = f"{tmp_path / 'absent.py'}:f"
    raises_config(test_config, "tasks.corner", "no such file")


def test_bad_reward_params(test_config: dict) -> None:
    test_config["tasks"]["peaks"]["params"] = {"widht": 0.1}
    raises_config(test_config, "tasks.peaks.params: widht: unknown parameter of reward 'peaks'")
    test_config["tasks"]["peaks"]["params"] = {"width": 0.0}  # a value the reward cannot take
    raises_config(test_config, "tasks.peaks.params: width: expected a number > 0, got 0.0")
    test_config["tasks"]["peaks"]["params"] = {"r0": "x"}  # a type, from the reward's hints
    raises_config(test_config, "tasks.peaks.params: r0: expected float, got 'x'")


def test_reward_params_are_checked_before_the_data_they_read_is_fetched(test_config: dict, tmp_path: Path,
                                                                        monkeypatch) -> None:
    """TF-Bind-8's table is fetched by the workflow's first job; its parameters are checked at the dry run all the
    same (its values, once the table is there)."""
    test_config["resources"] = str(tmp_path)  # no table fetched
    test_config["envs"]["tf"] = {"domain": "sequence", "params": {"alphabet": "dna", "length": 8, "mode": "append"},
                                 "tasks": ["tf_bad"], "methods": ["mcmc"], "variants": []}
    test_config["tasks"]["tf_bad"] = {"reward": "tfbind", "params": {"landscape": "ARX_REF_R1", "floor": -1.0}}
    raises_config(test_config, "tasks.tf_bad.params: floor must be > 0")
    test_config["tasks"]["tf_bad"]["params"] = {"landscape": "ARX_REF_R1", "flor": 0.1}
    raises_config(test_config, "tasks.tf_bad.params: flor: unknown parameter of reward 'tfbind'")
    test_config["tasks"]["tf_bad"]["params"] = {"landscape": "ARX_REF_R1"}
    check(test_config)
    from pipeline_lib.domains.sequence import rewards

    def reading(name, params, env, resources):  # a domain's bind that reads its data as it binds
        return open(rewards.tfbind_table(resources, params["landscape"]))

    monkeypatch.setattr(rewards, "bind", reading)
    check(test_config)  # not fetched yet: checked once the workflow has fetched it


def test_misspelt_parameter_of_a_reward_whose_bind_calls_it(test_config: dict) -> None:
    """A domain's bind may call the reward to check its parameters (subset's does): the TypeError of a misspelt
    keyword still comes out as a config error naming the task's params."""
    test_config["envs"]["grid6"]["domain"] = "subset"
    test_config["envs"]["grid6"]["params"] = {"n": 4}
    test_config["envs"]["grid6"]["methods"] = ["mcmc"]
    test_config["envs"]["grid6"]["tasks"] = ["corner"]
    test_config["tasks"]["corner"] = {"reward": "weights", "params": {"bta": 2.0}}
    raises_config(test_config, "tasks.corner.params", "'weights'", "bta")


def test_bad_env_params(test_config: dict) -> None:
    test_config["envs"]["grid6"]["params"] = {"ndim": 2, "size": 6}
    raises_config(test_config, "envs.grid6.params.size: unknown parameter of domain 'hypergrid'",
                  "['ndim', 'side']")
    test_config["envs"]["grid6"]["params"] = {"ndim": 2}
    raises_config(test_config, "envs.grid6.params: domain 'hypergrid' needs ['side']")
    test_config["envs"]["grid6"]["params"] = {"ndim": 2, "side": 1}  # right type, refused by the constructor
    raises_config(test_config, "envs.grid6: params of domain 'hypergrid'", "side >= 2")
    test_config["envs"]["grid6"]["domain"] = "torus"
    raises_config(test_config, "envs.grid6.domain: unknown domain 'torus'", str(sorted(DOMAINS)))


@pytest.mark.parametrize("params,expected", [
    ({"ndim": 2, "side": "six"}, "envs.grid6.params.side: expected int, got 'six'"),
    ({"ndim": 2.0, "side": 6}, "envs.grid6.params.ndim: expected int, got 2.0"),
    ({"ndim": True, "side": 6}, "envs.grid6.params.ndim: expected int, got True"),
])
def test_env_param_types(test_config: dict, params: dict, expected: str) -> None:
    """Domain parameters are checked against the constructor's type hints before anything is built."""
    test_config["envs"]["grid6"]["params"] = params
    raises_config(test_config, expected)


def test_unused_task_is_not_checked_but_listed_ones_are(test_config: dict) -> None:
    test_config["tasks"]["unused"] = {"reward": "nope", "params": {}, "modes": {"kind": "nonsense"}}
    check(test_config)  # only tasks an environment lists are built


def schema_error(config: dict) -> str:
    with pytest.raises(WorkflowError) as info:
        validate(config, SCHEMA)
    return str(info.value)


@pytest.fixture
def raw_test_config() -> dict:
    return yaml.safe_load((ROOT / "config/test.yaml").read_text())


def test_schema_negative_seed(raw_test_config: dict) -> None:
    raw_test_config["seeds"] = [0, -1]
    assert "-1 is less than the minimum of 0" in schema_error(raw_test_config)


def test_schema_empty_results_folder(raw_test_config: dict) -> None:
    raw_test_config["results"] = ""  # every output would be written below the file system's root
    message = schema_error(raw_test_config)
    assert "results" in message and ("short" in message or "non-empty" in message), message


def test_a_method_entry_names_keys_its_kind_reads(test_config: dict) -> None:
    """pretrained: on a kind that adapts no model would make it an "OC-GFN minus control" twin of nothing; a
    matched_to variant that this domain does not pre-train is named under its own key."""
    test_config["finetune"]["methods"]["mcmc_full"] = {"kind": "mcmc", "pretrained": "full"}
    raises_config(test_config, "finetune.methods.mcmc_full.pretrained: kind 'mcmc' adapts no pre-trained model")
    del test_config["finetune"]["methods"]["mcmc_full"]
    test_config["finetune"]["methods"]["matched"] = {"kind": "scratch", "matched_to": "nosuch"}
    raises_config(test_config, "finetune.methods.matched.matched_to: expected a variant pre-trained on grid6")


def test_schema_repeated_seed(raw_test_config: dict) -> None:
    raw_test_config["seeds"] = [0, 1, 0]  # would run seed 0 once and count its rows twice in every table
    message = schema_error(raw_test_config)
    assert "seeds" in message and "non-unique" in message, message


def test_schema_unknown_top_level_key(raw_test_config: dict) -> None:
    raw_test_config["sedes"] = [0]
    assert "sedes" in schema_error(raw_test_config)


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c["finetune"]["methods"]["exact"].update(flow="guess"), "guess"),
    (lambda c: c["tasks"]["corner"]["modes"].update(fraction=0), "fraction"),
    (lambda c: c["tasks"]["corner"].update(mode_fraction=0.5), "mode_fraction"),  # the old key is gone
    (lambda c: c["tasks"]["corner"]["modes"].pop("kind"), "kind"),
    (lambda c: c["tasks"]["corner"]["modes"].update(min_distance=0), "min_distance"),
    (lambda c: c.update(device="tpu"), "tpu"),
    (lambda c: c.update(seeds=[]), "seeds"),
    (lambda c: c["envs"]["grid6"].pop("domain"), "domain"),
    (lambda c: c["evaluate"].update(samples=0), "samples"),
    (lambda c: c["pretrain"].update(treads=2), "treads"),
    (lambda c: c["tasks"].update({"bad/name": {"reward": "corner"}}), "bad/name"),
    (lambda c: c["finetune"]["methods"].update({"my method": {"kind": "scratch"}}), "my method"),
])
def test_schema_errors(raw_test_config: dict, mutate, needle: str) -> None:
    config = copy.deepcopy(raw_test_config)
    mutate(config)
    assert needle in schema_error(config)


@pytest.mark.parametrize("section,key", [("finetune", "epsilon"), ("finetune", "q_epsilon"),
                                         ("pretrain", "negative_epsilon")])
def test_epsilon_out_of_range(test_config: dict, section: str, key: str) -> None:
    test_config[section]["settings"][key] = -0.5
    raises_config(test_config, key)


def test_editing_a_plugin_reward_changes_its_tasks_jobs_only(test_config: dict, tmp_path: Path) -> None:
    """A plug-in reward's source hash is part of its task's jobs (Snakemake reruns on changed params): editing the
    file reruns that task's target and adaptations, a built-in task's jobs stay as they were."""
    from pipeline_lib import plan

    plugin = tmp_path / "mine.py"
    plugin.write_text("def r(x):\n    return x.sum(-1) * 0.0 + 1.0\n")
    test_config["tasks"]["corner"]["reward"] = f"{plugin}:r"
    before = plan.target_job(test_config, "grid6", "corner"), plan.task_spec(test_config, "peaks")
    plugin.write_text("def r(x):\n    return x.sum(-1) * 0.0 + 2.0\n")
    after = plan.target_job(test_config, "grid6", "corner"), plan.task_spec(test_config, "peaks")
    assert before[0]["task"]["code"] != after[0]["task"]["code"]
    assert before[1] == after[1] and "code" not in after[1]
    assert plan.plugin_source("pipeline_lib.domains.hypergrid.rewards:corner").name == "rewards.py"
    assert plan.plugin_source("no_such_module_anywhere:f") is None


def test_the_figure_rules_code_hash_follows_the_drawing_code(tmp_path: Path, monkeypatch) -> None:
    """The figure and summary rules carry ``source_hash('pipeline_lib.report')`` as a param: an edit to any module
    of the package changes it (so Snakemake reruns them), and nothing else does."""
    import importlib

    from pipeline_lib import plan

    package = tmp_path / f"drawing_{abs(hash(tmp_path)) % 10**8}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plots.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    first = plan.source_hash(package.name)
    assert plan.source_hash(package.name) == first
    (package / "plots.py").write_text("X = 2\n")
    assert plan.source_hash(package.name) != first
    assert len(plan.source_hash("pipeline_lib.report")) == 16


def test_a_mode_key_of_another_kind_is_refused(test_config: dict) -> None:
    """{kind: relative, threshold: 0.9} used to run with the default fraction, the threshold ignored."""
    test_config["tasks"]["corner"]["modes"] = {"kind": "relative", "threshold": 0.9}
    raises_config(test_config, "tasks.corner.modes.kind: 'relative' takes ['fraction'], not ['threshold']")


def test_a_schema_failure_is_one_line_naming_the_key(test_config: dict) -> None:
    """A misspelt key used to print 55 lines of schema; the workflow now says where and what, and what is allowed."""
    from pipeline_lib.config import schema_message

    test_config["tasks"]["corner"]["modes"] = {"kind": "threshold", "treshold": 0.5}
    with pytest.raises(WorkflowError) as info:
        validate(test_config, SCHEMA)
    message = schema_message(info.value)
    assert message.startswith("invalid config: tasks.corner.modes: ") and "'treshold' was unexpected" in message
    assert "allowed: ['delta', 'fraction', 'kind'" in message and "\n" not in message
    assert schema_message(ValueError("not a schema failure")) is None


class _NoPairWidth(HyperGrid):
    """A domain with pair_features but no pair_dim: the mistake a new domain can make."""

    def __init__(self, ndim: int, side: int, device="cpu") -> None:
        super().__init__(ndim, side, device)
        del self.pair_dim


def test_pairs_conditioning_needs_the_domains_pair_width(test_config: dict, monkeypatch) -> None:
    monkeypatch.setitem(DOMAINS, "nopairs", f"{__name__}:_NoPairWidth")
    test_config["envs"]["grid6"]["domain"] = "nopairs"
    test_config["envs"]["grid6"].setdefault("pretrain", {})["conditioning"] = "pairs"
    raises_config(test_config, "envs.grid6.pretrain.conditioning: 'pairs' needs the 'nopairs' environment's "
                  "pair_dim", "'grid6' has None")
    del test_config["envs"]["grid6"]["pretrain"]["conditioning"]  # set by a variant: the error names the variant
    test_config["pretrain"]["variants"]["no_ot"]["conditioning"] = "pairs"
    raises_config(test_config, "pretrain.variants.no_ot.conditioning: 'pairs' needs the 'nopairs' environment's")
    test_config["envs"]["grid6"]["domain"] = "hypergrid"
    check(test_config)  # the built-in grid has both


def fake_domains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, **classes: str) -> None:
    """``source`` as the module ``fake_domains`` (importable for this test), each of its ``classes`` a domain."""
    (tmp_path / "fake_domains.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "fake_domains", raising=False)  # another test's source under the same name
    for domain, cls in classes.items():
        monkeypatch.setitem(DOMAINS, domain, f"fake_domains:{cls}")


FAKE_DOMAINS = '''
from pipeline_lib.domains.subset.env import Subset


class NoPropose(Subset):
    """Declares local moves (as Subset does) without the method they need."""
    propose = None


class TreeSubset(Subset):
    """Sets are a DAG (a set of k items has k parents), but this one claims to be a tree."""
    rewards_module = "pipeline_lib.domains.subset.rewards"

    def capabilities(self):
        return {**super().capabilities(), "tree": None}

    def path_step(self, y, b, j):
        raise NotImplementedError
'''


def test_a_declared_capability_needs_its_methods_and_a_tree_one_parent_per_state(
        test_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline_lib.domains import make_env

    fake_domains(tmp_path, monkeypatch, FAKE_DOMAINS, nopropose="NoPropose", treesubset="TreeSubset")
    with pytest.raises(ValueError, match=r"NoPropose declares 'local_moves' \(capabilities\(\) None\) but has no "
                                         r"propose"):
        make_env("nopropose", {"n": 4})
    test_config["envs"]["grid6"] = {"domain": "treesubset", "params": {"n": 4, "max_size": 2}, "tasks": []}
    raises_config(test_config, "envs.grid6: TreeSubset declares 'tree'", "has 2 parents (backward_mask)")


def test_a_reward_whose_binding_fails_names_the_task(test_config: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, name, params, resources):
        raise IndexError("index 4 is out of bounds for dimension 0 with size 4")

    monkeypatch.setattr(HyperGrid, "bind_reward", broken)
    raises_config(test_config, "tasks.corner.params: reward 'corner' could not be bound", "IndexError: index 4")


def test_checkpoint_every_is_no_part_of_a_jobs_params_wherever_it_is_set(test_config: dict) -> None:
    """It says when a run saves, not what it computes: set in a method's own entry too, it reruns no job."""
    from pipeline_lib import plan

    before = plan.result_job(plan.finetune_job(test_config, "grid6", "corner", "mcmc"))
    test_config["finetune"]["methods"]["mcmc"]["settings"] = {"checkpoint_every": 10}
    check(test_config)
    job = plan.finetune_job(test_config, "grid6", "corner", "mcmc")
    assert job["settings"]["checkpoint_every"] == 10  # the run saves every 10 steps
    assert plan.result_job(job) == before
    test_config["finetune"]["methods"]["mcmc"]["settings"]["steps"] = 7  # what it computes: its params change
    assert plan.result_job(plan.finetune_job(test_config, "grid6", "corner", "mcmc"))["settings"]["steps"] == 7


def test_a_shared_setting_restated_in_a_methods_entry_reruns_nothing(test_config: dict) -> None:
    """A job's params hold its resolved settings once: the same value written again in the method's own entry is
    the same job, while another value is another."""
    from pipeline_lib import plan

    test_config["finetune"]["settings"]["lr"] = 0.003
    before = plan.result_job(plan.finetune_job(test_config, "grid6", "corner", "amortized"))
    test_config["finetune"]["methods"]["amortized"]["settings"] = {"lr": 0.003}
    check(test_config)
    assert plan.result_job(plan.finetune_job(test_config, "grid6", "corner", "amortized")) == before
    test_config["finetune"]["methods"]["amortized"]["settings"] = {"lr": 0.001}
    assert plan.result_job(plan.finetune_job(test_config, "grid6", "corner", "amortized")) != before


class _MisspeltRewards(HyperGrid):
    rewards_module = "pipeline_lib.domains.hypergrid.reward"  # the file is rewards.py


def test_a_domains_rewards_module_that_does_not_import_is_named(test_config: dict, monkeypatch) -> None:
    monkeypatch.setitem(DOMAINS, "misspelt", f"{__name__}:_MisspeltRewards")
    test_config["envs"]["grid6"]["domain"] = "misspelt"
    raises_config(test_config, "envs.grid6: _MisspeltRewards.rewards_module 'pipeline_lib.domains.hypergrid.reward' "
                  "does not import")


class _TaskColumn(HyperGrid):
    def describe(self, states):
        return {**super().describe(states), "task": ["mine"] * len(states)}


def test_a_describe_column_named_like_a_label_is_refused(test_config: dict, monkeypatch) -> None:
    """The samples and targets tables put describe()'s columns beside their labels: a clash would overwrite one."""
    monkeypatch.setitem(DOMAINS, "taskcolumn", f"{__name__}:_TaskColumn")
    test_config["envs"]["grid6"]["domain"] = "taskcolumn"
    raises_config(test_config, "envs.grid6: _TaskColumn.describe() returns ['task']")


class _OwnMetrics(HyperGrid):
    def sample_metrics(self, states, top):
        return {"corners": 1.0, "seed": 99, "top100_reward": 0.0}


class _Headline(HyperGrid):
    headline = "L1"


def test_a_domains_own_metric_or_headline_that_the_pipeline_would_misread_is_refused(test_config: dict,
                                                                                     monkeypatch) -> None:
    """A final sampler's metrics row holds the labels and the pipeline's metrics beside a domain's own: a name of
    either would be overwritten in silence. A headline the summary does not know would be ignored in silence."""
    monkeypatch.setitem(DOMAINS, "ownmetrics", f"{__name__}:_OwnMetrics")
    monkeypatch.setitem(DOMAINS, "headline", f"{__name__}:_Headline")
    test_config["envs"]["grid6"]["domain"] = "ownmetrics"
    raises_config(test_config, "envs.grid6: _OwnMetrics.sample_metrics() returns ['seed', 'top100_reward'], names "
                  "of the pipeline's own columns")
    test_config["envs"]["grid6"]["domain"] = "headline"
    raises_config(test_config, "envs.grid6: _Headline.headline is 'L1'; expected one of ('search', 'l1')")


def test_the_pipelines_metric_names_are_those_a_final_sampler_row_holds() -> None:
    """PIPELINE_METRICS (what a domain's own metrics may not be named) lists every column sample_summary writes."""
    from pipeline_lib.tasks.metrics import PIPELINE_METRICS, sample_summary
    from pipeline_lib.tasks.modes import ThresholdModes

    env = HyperGrid(2, 4)
    x = env.random_outcomes(10, torch.Generator().manual_seed(0))
    summary = sample_summary(env, x, torch.rand(10) + 0.1, ThresholdModes(0.5, 1, env.distance))
    assert set(summary) <= set(PIPELINE_METRICS)


@pytest.mark.parametrize("params, reward, message", [
    ({"alphabet": "bits2", "length": 4, "min_length": 2}, {"reward": "tfbind", "params": {"landscape": "PAX3_REF_R1"}},
     "reward 'tfbind' scores DNA 8-mers: it needs alphabet dna and length 8 (min_length 8); this environment has "
     "alphabet ['00', '01', '10', '11'], length 4, min_length 2 (environment 'seq')"),
    ({"alphabet": "dna", "length": 6}, {"reward": "tfbind", "params": {"landscape": "NOT_FETCHED_R9"}},
     "reward 'tfbind' scores DNA 8-mers"),
    ({"alphabet": "bits2", "length": 4, "min_length": 2}, {"reward": "bitseq"},
     "reward 'bitseq' compares bit strings of one length: it needs min_length = length"),
])
def test_a_reward_for_other_objects_is_refused_whatever_is_fetched(test_config: dict, params: dict, reward: dict,
                                                                  message: str, monkeypatch) -> None:
    """TF-Bind-8 on anything but DNA 8-mers used to pass the check while its table was not fetched (and fail in the
    jobs); the objects are checked at bind time, before any data."""
    from pipeline_lib.domains.sequence import data

    monkeypatch.setattr(data, "known_landscape", lambda folder, name: None)  # any name counts as known here
    test_config["tasks"]["mine"] = reward
    test_config["envs"]["seq"] = {"domain": "sequence", "params": params, "tasks": ["mine"]}
    raises_config(test_config, "tasks.mine.params: " + message)


def test_a_task_listed_twice_on_an_environment_is_named(test_config: dict) -> None:
    test_config["envs"]["grid6"]["tasks"] = ["corner", "corner"]
    raises_config(test_config, "envs.grid6.tasks: ['corner'] listed twice")


@pytest.mark.parametrize("component, message", [
    ({"name": "qed", "params": {"floor": 0.01}}, "components[0] (qed): floor is the product's own parameter"),
    ({"name": "logp", "params": {"lo": 1.0}}, "components[0].params.lo: unknown parameter of objective 'logp'; "
                                              "expected some of ['low', 'high', 'width']"),
])
def test_a_products_component_names_its_own_mistake(test_config: dict, component: dict, message: str) -> None:
    test_config["tasks"]["mine"] = {"reward": "product", "params": {"components": [component]},
                                    "modes": {"kind": "tanimoto", "threshold": 0.5}}
    test_config["envs"]["mol"] = {"domain": "molecule", "params": {"length": 6}, "tasks": ["mine"],
                                  "methods": ["mcmc"]}
    raises_config(test_config, "tasks.mine.params: ", message)


FAKE_OUTSIDE = '''
from pathlib import Path

from pipeline_lib.domains.hypergrid.env import HyperGrid
from pipeline_lib.domains.hypergrid.rewards import REWARDS, bind, fetch, reference_modes


def data_files(name, params, resources):
    return [Path(resources).resolve().parent / "elsewhere" / "table.csv"]


class OutsideGrid(HyperGrid):
    """Its rewards read a file beside the resources folder, which the workflow's data rule never makes."""
    rewards_module = "fake_domains"


class KeywordGrid(HyperGrid):
    """A wrapper that passes every keyword on, device included."""

    def __init__(self, **params):
        super().__init__(**params)
'''


def test_a_data_file_outside_resources_is_refused_and_a_keyword_constructor_is_taken(
        test_config: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_domains(tmp_path, monkeypatch, FAKE_OUTSIDE, outside="OutsideGrid", keywords="KeywordGrid")
    test_config["resources"] = str(tmp_path / "resources")
    test_config["envs"]["grid6"]["domain"] = "outside"
    raises_config(test_config, "tasks.corner: reward 'corner' reads", "elsewhere/table.csv'], outside the resources "
                  f"folder {str(tmp_path / 'resources')!r}")
    test_config["envs"]["grid6"]["domain"] = "keywords"
    check(test_config)  # **params takes device: the constructor is not refused
