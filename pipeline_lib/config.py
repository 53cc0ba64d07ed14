"""Turn the validated workflow config into dataclasses, and check what a JSON schema cannot:
cross-references between sections, dataclass field names, and that every reward imports and
returns valid values. All checks run when the workflow is parsed, before any job starts."""
from __future__ import annotations

import dataclasses
from typing import Any

from pipeline_lib.adapt import AdaptConfig
from pipeline_lib.envs import make_env
from pipeline_lib.losses import OT_MODES
from pipeline_lib.pretrain import PretrainConfig
from pipeline_lib.rewards import make_reward, validate_reward


class ConfigError(ValueError):
    """A config value is wrong; the message names the key and what was expected."""


PROBABILITIES = {"epsilon", "q_epsilon", "negative_epsilon", "explorer_epsilon"}
ANY_SIGN = {"log_eps_fail"}


def _build(cls, values: dict[str, Any], where: str):
    """Instantiate a settings dataclass, checking names, types and ranges of ``values``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    for key, value in values.items():
        default = fields[key].default
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        ok = isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))
        if numeric and isinstance(value, bool):
            ok = False
        if not ok:
            raise ConfigError(f"{where}.{key}: expected {type(default).__name__}, got {value!r}")
        if key in PROBABILITIES and not 0 <= value <= 1:
            raise ConfigError(f"{where}.{key}: expected a probability in [0, 1], got {value!r}")
        if numeric and key not in PROBABILITIES | ANY_SIGN and value <= 0:
            raise ConfigError(f"{where}.{key}: expected a positive number, got {value!r}")
    return cls(**values)


def pretrain_config(config: dict[str, Any], variant: str) -> PretrainConfig:
    """Shared pre-training settings overridden by one variant."""
    variants = config["pretrain"]["variants"]
    if variant not in variants:
        raise ConfigError(f"pretrain.variants: no variant {variant!r}; have {sorted(variants)}")
    settings = config["pretrain"].get("settings", {})
    _build(PretrainConfig, settings, "pretrain.settings")
    cfg = _build(PretrainConfig, {**settings, **variants[variant]}, f"pretrain.variants.{variant}")
    if cfg.ot not in OT_MODES:
        raise ConfigError(f"pretrain.variants.{variant}.ot: expected one of {OT_MODES}, got {cfg.ot!r}")
    return cfg


def method_config(config: dict[str, Any], method: str) -> tuple[dict[str, Any], AdaptConfig]:
    """A method's entry and its adaptation settings (shared settings, then its own overrides)."""
    methods = config["finetune"]["methods"]
    if method not in methods:
        raise ConfigError(f"finetune.methods: no method {method!r}; have {sorted(methods)}")
    entry = methods[method]
    _build(AdaptConfig, config["finetune"].get("settings", {}), "finetune.settings")
    values = {**config["finetune"].get("settings", {}), **entry.get("settings", {}),
              "flow": entry.get("flow", "policy")}
    return entry, _build(AdaptConfig, values, f"finetune.methods.{method}")


def task_reward(config: dict[str, Any], task: str, env):
    """The reward function of a task bound to its parameters."""
    if task not in config["tasks"]:
        raise ConfigError(f"tasks: no task {task!r}; have {sorted(config['tasks'])}")
    entry = config["tasks"][task]
    try:
        return make_reward(entry["reward"], entry.get("params", {}), env)
    except ValueError as err:
        raise ConfigError(f"tasks.{task}.reward: {err}") from err


def check(config: dict[str, Any]) -> None:
    """Everything a schema cannot say; raises ConfigError naming the key."""
    for variant in config["pretrain"]["variants"]:
        pretrain_config(config, variant)
    for method, entry in config["finetune"]["methods"].items():
        method_config(config, method)
        if entry["kind"] in ("exact", "amortized"):
            if entry.get("pretrained") not in config["pretrain"]["variants"]:
                raise ConfigError(f"finetune.methods.{method}.pretrained: expected one of "
                                  f"{sorted(config['pretrain']['variants'])}, got {entry.get('pretrained')!r}")
    for name, spec in config["envs"].items():
        try:
            env = make_env(spec["domain"], spec["params"])
        except ValueError as err:
            raise ConfigError(f"envs.{name}: {err}") from err
        for task in spec["tasks"]:
            if task not in config["tasks"]:
                raise ConfigError(f"envs.{name}.tasks: unknown task {task!r}; "
                                  f"expected one of {sorted(config['tasks'])}")
            sample = env.all_states()[:: max(1, env.n_states // 64)]
            try:
                validate_reward(task_reward(config, task, env), sample, config["tasks"][task]["reward"])
            except ConfigError:
                raise
            except ValueError as err:
                raise ConfigError(f"tasks.{task}.reward: {err}") from err
