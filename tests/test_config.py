"""The shipped configs validate; bad configs fail with a message naming the key (schema, then check)."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from pipeline_lib.adapt import AdaptConfig
from pipeline_lib.config import ConfigError, check, method_config, pretrain_config, task_reward
from pipeline_lib.domains import HyperGrid
from pipeline_lib.ocgfn.pretrain import PretrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def load_config(name: str) -> dict:
    """A shipped config, validated against the schema (which fills defaults)."""
    config = yaml.safe_load((ROOT / "config" / name).read_text())
    validate(config, SCHEMA)
    return config


@pytest.mark.parametrize("name", ["config.yaml", "test.yaml", "paper.yaml", "seqtest.yaml", "tfbind30.yaml",
                                  "byo_molecule.yaml", "molecules.yaml"])
def test_shipped_configs_validate_and_check(name: str) -> None:
    config = load_config(name)
    check(config)


def test_schema_fills_defaults(test_config: dict) -> None:
    assert test_config["pretrain"]["threads"] == 1
    assert test_config["finetune"]["methods"]["scratch"]["flow"] == "policy"
    assert test_config["finetune"]["methods"]["scratch"]["settings"] == {}
    raw = {"envs": {"g": {"domain": "hypergrid", "params": {"ndim": 2, "side": 3}, "tasks": []}}, "tasks": {}}
    validate(raw, SCHEMA)
    assert raw["results"] == "results" and raw["device"] == "auto" and raw["seeds"] == [0]
    assert raw["pretrain"]["variants"] == {"full": {"ot": "reachable", "contrastive": True}}
    assert raw["evaluate"]["samples"] == 10000


def test_pretrain_and_method_config_values(test_config: dict) -> None:
    cfg = pretrain_config(test_config, "no_ot")
    assert isinstance(cfg, PretrainConfig)
    assert (cfg.steps, cfg.batch_size, cfg.hidden, cfg.ot, cfg.contrastive) == (60, 16, 32, "off", True)
    assert cfg.log_eps_fail == -10.0  # untouched defaults survive
    entry, adapt = method_config(test_config, "scratch")
    assert entry["kind"] == "scratch" and isinstance(adapt, AdaptConfig)
    assert (adapt.steps, adapt.eval_every, adapt.flow) == (40, 20, "policy")
    test_config["finetune"]["methods"]["scratch"]["settings"] = {"steps": 7, "lr": 1}  # int for a float: fine
    _, adapt = method_config(test_config, "scratch")
    assert adapt.steps == 7 and adapt.lr == 1 and adapt.batch_size == 16


def test_task_reward_binds(test_config: dict) -> None:
    env = HyperGrid(ndim=2, side=6)
    reward = task_reward(test_config, "corner", env)
    assert reward(env.all_states()).shape == (36,)
    with pytest.raises(ConfigError, match="tasks: no task 'ring'"):
        task_reward(test_config, "ring", env)


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


def test_unknown_pretrain_setting(test_config: dict) -> None:
    test_config["pretrain"]["variants"]["full"]["lerning_rate"] = 0.1
    raises_config(test_config, "pretrain.variants.full: unknown key", "lerning_rate")


def test_unknown_shared_pretrain_setting(test_config: dict) -> None:
    test_config["pretrain"]["settings"]["stepz"] = 3
    raises_config(test_config, "pretrain.settings: unknown key", "stepz")


def test_unknown_finetune_setting(test_config: dict) -> None:
    test_config["finetune"]["methods"]["scratch"]["settings"] = {"epsilom": 0.1}
    raises_config(test_config, "finetune.methods.scratch: unknown key", "epsilom")


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


def test_negative_values_allowed_where_meaningful(test_config: dict) -> None:
    test_config["pretrain"]["settings"].update({"log_eps_fail": -5.0, "negative_epsilon": 0.0})
    test_config["finetune"]["settings"].update({"epsilon": 0.0, "q_epsilon": 0.0})
    check(test_config)


@pytest.mark.parametrize("ot", ["sometimes", "Reachable", False])
def test_bad_ot(test_config: dict, ot) -> None:
    test_config["pretrain"]["variants"]["no_ot"]["ot"] = ot  # unquoted YAML `off` would be False
    raises_config(test_config, "pretrain.variants.no_ot.ot")


def test_reward_plugin_returning_nan(test_config: dict, tmp_path: Path) -> None:
    path = tmp_path / "nan_reward.py"
    path.write_text("import torch\n\ndef f(x):\n    r = torch.ones(len(x))\n    r[-1] = float('nan')\n"
                    "    return r\n")
    test_config["tasks"]["broken"] = {"reward": f"{path}:f", "params": {}, "mode_fraction": 0.5}
    test_config["envs"]["grid6"]["tasks"].append("broken")
    raises_config(test_config, "tasks.broken", "NaN")


def test_reward_plugin_raising(test_config: dict, tmp_path: Path) -> None:
    path = tmp_path / "raising_reward.py"
    path.write_text("def f(x, power):\n    return (x.sum(-1) + 1.0) ** power\n")
    test_config["tasks"]["plug"] = {"reward": f"{path}:f", "params": {"power": 2}, "mode_fraction": 0.5}
    test_config["envs"]["grid6"]["tasks"].append("plug")
    check(test_config)  # a good plug-in passes
    test_config["tasks"]["plug"]["params"] = {"pow": 2}
    raises_config(test_config, "tasks.plug", "TypeError")


def test_reward_neither_registered_nor_path(test_config: dict) -> None:
    test_config["tasks"]["corner"]["reward"] = "cornerr"
    raises_config(test_config, "tasks.corner.reward", "'cornerr'", "is not a hypergrid reward", "'corner'", "plug-in")


def test_reward_path_missing_file(test_config: dict, tmp_path: Path) -> None:
    test_config["tasks"]["corner"]["reward"] = f"{tmp_path / 'absent.py'}:f"
    raises_config(test_config, "tasks.corner", "no such file")


def test_bad_reward_params(test_config: dict) -> None:
    test_config["tasks"]["peaks"]["params"] = {"widht": 0.1}
    raises_config(test_config, "tasks.peaks", "widht")


def test_bad_env_params(test_config: dict) -> None:
    test_config["envs"]["grid6"]["params"] = {"ndim": 2, "size": 6}
    raises_config(test_config, "envs.grid6", "envs.*.params", "size")
    test_config["envs"]["grid6"]["domain"] = "torus"
    raises_config(test_config, "envs.grid6", "envs.*.domain", "'torus'")


def test_unused_task_is_not_checked_but_listed_ones_are(test_config: dict) -> None:
    test_config["tasks"]["unused"] = {"reward": "nope", "params": {}, "mode_fraction": 0.5}
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


def test_schema_unknown_top_level_key(raw_test_config: dict) -> None:
    raw_test_config["sedes"] = [0]
    assert "sedes" in schema_error(raw_test_config)


@pytest.mark.parametrize("mutate,needle", [
    (lambda c: c["finetune"]["methods"]["exact"].update(kind="magic"), "magic"),
    (lambda c: c["finetune"]["methods"]["exact"].update(flow="guess"), "guess"),
    (lambda c: c["tasks"]["corner"].update(mode_fraction=0), "mode_fraction"),
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
