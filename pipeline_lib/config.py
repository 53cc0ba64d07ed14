"""Turn the validated workflow config into dataclasses, and check what a JSON schema cannot:
cross-references between sections, dataclass field names, and that every reward imports and
returns valid values. All checks run when the workflow is parsed, before any job starts."""
from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline_lib.core.env import HEADLINES, LABEL_COLUMNS
from pipeline_lib.core.losses import OT_MODES
from pipeline_lib.core.nets import CONDITIONING
from pipeline_lib.domains import DOMAINS, check_params, domain_class, make_env
from pipeline_lib.domains.contract import check_contract
from pipeline_lib.methods import METHODS, method_class
from pipeline_lib.ocgfn.pretrain import PretrainConfig
from pipeline_lib.ocgfn.sources import CONTROL
from pipeline_lib.tasks import modes
from pipeline_lib.tasks.metrics import PIPELINE_METRICS
from pipeline_lib.tasks.rewards import bound_reward, reward_function, validate_reward


class ConfigError(ValueError):
    """A config value is wrong; the message names the key and what was expected."""


# YAML 1.1 (what Snakemake and PyYAML read) takes a float only with a dot: 1e-3 is the string '1e-3'
MANTISSA = r"[-+]?(\d+\.?\d*|\.\d+)"
SCIENTIFIC = re.compile(MANTISSA + r"[eE][-+]?\d+")
DECIMAL = re.compile(MANTISSA + r"([eE][-+]?\d+)?")
INTEGER = re.compile(r"[-+]?\d+")
INFINITY = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf}


def read_numbers(config: Any) -> None:
    """Turn, in place, every string value written as a number in scientific notation without a dot (``lr: 1e-3``,
    which YAML 1.1 reads as a string) into the float it spells, so such a value means what it says everywhere,
    reward plug-ins' params included, instead of failing as "expected float, got '1e-3'". In place: Snakemake
    hands its own config dict to every job."""
    items = config.items() if isinstance(config, dict) else enumerate(config) if isinstance(config, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and SCIENTIFIC.fullmatch(value.strip()):
            config[key] = float(value)
        else:
            read_numbers(value)


def read_overrides(config: Any, overrides: Any, files: Any) -> None:
    """``--config`` values as a config file would give them. Snakemake reads a nested one (``finetune={settings:
    {steps: 60}}``, ``seeds=[0,1]``) with YAML's BaseLoader: every leaf a string, quotes dropped, so 60 would be
    refused as "expected int, got '60'". Each string leaf of ``overrides`` (Snakemake's ``--config`` mapping)
    keeps the type of what it replaces in ``files`` (the config files' values): a string stays a string (a
    landscape "0101", RNA ``targets: "2"``, ``ot: off``); a number, a boolean or a new key is read as YAML reads a
    number (int, decimal, .inf), true / false or null. In place in ``config``; nothing a config file gave is
    touched."""
    if isinstance(overrides, Mapping):
        items = overrides.items()
    elif isinstance(overrides, (list, tuple)):
        items = enumerate(overrides)
    else:
        return
    for key, value in items:
        try:
            here = config[key]
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(files, Mapping):
            before = files.get(key)
        elif isinstance(files, list) and files:  # a list's items share a type: a new item is read as the first
            before = files[key] if isinstance(key, int) and key < len(files) else files[0]
        else:
            before = None
        if isinstance(value, str) and here == value:
            if not isinstance(before, str):
                config[key] = _yaml_scalar(value)
        else:
            read_overrides(here, value, before)


def _yaml_scalar(text: str) -> Any:
    """What a config file's YAML makes of an unquoted ``text``: an int, a float, a boolean, None, or the string."""
    plain = text.strip()
    if INTEGER.fullmatch(plain):
        return int(plain)
    if DECIMAL.fullmatch(plain):
        return float(plain)
    if plain.lower() in INFINITY:
        return INFINITY[plain.lower()]
    if plain.lower() in ("true", "false"):
        return plain.lower() == "true"
    if plain in ("null", "~"):
        return None
    return text


def read_yaml(path: str | Path) -> Any:
    """A config file as YAML reads it, refusing what Snakemake would report without a line or take in silence:
    a syntax error (Snakemake says only "not valid JSON or YAML") is named with its line and column, and a mapping
    that repeats a key is refused, since YAML keeps the last silently, so a pasted second ``tasks:`` under an
    environment replaces the first and the error then names what the user never touched. Merge keys
    (``<<: *anchor``) and the keys they bring may be overridden, as YAML means them to be."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in seen:
                raise ConfigError(f"{path}, line {line}: duplicate key {key_node.value!r} (first at line "
                                  f"{seen[key_node.value]}); YAML would keep only the last, dropping the first "
                                  f"silently: merge the two")
            seen[key_node.value] = line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        context = f" ({err.context}" if err.context else ""
        if context and err.context_mark is not None and err.context_mark is not mark:
            context += f" started at line {err.context_mark.line + 1}"
        context += ")" if context else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {err.problem}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None


def schema_message(err: BaseException) -> str | None:
    """The line a user needs from a schema failure (``snakemake.utils.validate``): the key and what was wrong,
    with the allowed keys where one was unexpected, instead of a dump of the schema; None if not one."""
    import jsonschema

    cause = err.__cause__ or err.__context__
    if not isinstance(cause, jsonschema.ValidationError):
        return None
    where = ".".join(str(p) for p in cause.absolute_path) or "the top level"
    allowed = ""
    if cause.validator == "additionalProperties" and isinstance(cause.schema, dict):
        allowed = f"; allowed: {sorted(cause.schema.get('properties', {}))}"
    return f"invalid config: {where}: {cause.message}{allowed}"


PROBABILITIES = {"epsilon", "q_epsilon", "negative_epsilon", "explorer_epsilon", "lr_decay", "gamma", "random_goals",
                 "data_goals"}
ANY_SIGN = {"log_eps_fail"}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_value(cls, key: str, value: Any, where: str) -> None:
    """One setting against its dataclass field: type (ints pass as floats) and range."""
    default = {f.name: f for f in dataclasses.fields(cls)}[key].default
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


def _check_values(cls, values: dict[str, Any], where: str) -> None:
    """Names, types and ranges of ``values`` against the fields of a settings dataclass, named under ``where``."""
    fields = _fields(cls)
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(fields)}")
    for key, value in values.items():
        _check_value(cls, key, value, where)


def _build(cls, values: dict[str, Any], where: str):
    """Instantiate a settings dataclass, checking names, types and ranges of ``values``."""
    _check_values(cls, values, where)
    return cls(**values)


def env_variants(config: dict[str, Any], env: str) -> list[str]:
    """Pre-training variants run on ``env``: its ``variants`` list (``[]``: none, as ``tasks: []`` is no task, so a
    baselines-only domain pays no pre-training), all of them where the key is absent."""
    own = config["envs"][env].get("variants")
    return list(config["pretrain"]["variants"] if own is None else own)


def env_methods(config: dict[str, Any], env: str) -> list[str]:
    """Adaptation methods run on ``env``: its ``methods`` list (``[]``: none), all of them where the key is absent."""
    own = config["envs"][env].get("methods")
    return list(config["finetune"]["methods"] if own is None else own)


def pretrain_key(config: dict[str, Any], variant: str, env: str | None, key: str) -> str:
    """Where a pre-training job's ``key`` is set: the variant, else the environment's overrides, else the shared
    settings (what an error about its value should name)."""
    if key in config["pretrain"]["variants"].get(variant, {}):
        return f"pretrain.variants.{variant}.{key}"
    if env is not None and key in config["envs"][env].get("pretrain", {}):
        return f"envs.{env}.pretrain.{key}"
    return f"pretrain.settings.{key}"


def pretrain_config(config: dict[str, Any], variant: str, env: str | None = None) -> PretrainConfig:
    """Shared pre-training settings, then the environment's overrides, then the variant's."""
    variants = config["pretrain"]["variants"]
    if variant == CONTROL:
        raise ConfigError(f"pretrain.variants: {CONTROL!r} is reserved for the no-pre-training control; rename it")
    if variant not in variants:
        raise ConfigError(f"pretrain.variants: no variant {variant!r}; have {sorted(variants)}")
    from pipeline_lib.ocgfn.descriptor import BOUNDARIES, DESCRIPTOR_LOSSES, OUTCOMES
    from pipeline_lib.ocgfn.gcrl import ALGORITHMS, HER, UNREAD

    settings = config["pretrain"].get("settings", {})
    _build(PretrainConfig, settings, "pretrain.settings")
    layers = [("pretrain.settings", settings), (f"pretrain.variants.{variant}", variants[variant])]
    if env is not None:
        own = config["envs"][env].get("pretrain", {})
        _build(PretrainConfig, {**settings, **own}, f"envs.{env}.pretrain")
        settings = {**settings, **own}
        layers.insert(1, (f"envs.{env}.pretrain", own))
    cfg = _build(PretrainConfig, {**settings, **variants[variant]}, f"pretrain.variants.{variant}")
    choices = {"ot": OT_MODES, "conditioning": CONDITIONING, "algorithm": ALGORITHMS, "her": HER, "outcomes": OUTCOMES,
               "descriptor_loss": DESCRIPTOR_LOSSES, "descriptor_boundary": BOUNDARIES}
    for where, values in layers:  # each layer's own values, also those a later one overrides (a typo stays one)
        for key in sorted(choices.keys() & values.keys()):
            if values[key] not in choices[key]:
                raise ConfigError(f"{where}.{key}: expected one of {choices[key]}, got {values[key]!r}")
    if env is not None and cfg.conditioning == "pairs":
        domain = config["envs"][env]["domain"]
        if not hasattr(domain_class(domain), "pair_features"):
            raise ConfigError(f"{pretrain_key(config, variant, env, 'conditioning')}: 'pairs' needs "
                              f"pair_features(states, outcomes) on the {domain!r} environment of {env!r}, which has "
                              f"none; use 'product' or 'concat'")
    if cfg.outcomes == "descriptor" and cfg.algorithm != "ocgfn":  # named before its settings (ot) are
        raise ConfigError(f"{pretrain_key(config, variant, env, 'algorithm')}: {cfg.algorithm!r} with outcomes: "
                          "descriptor: the GCRL baseline conditions on objects; use algorithm: ocgfn")
    unread = UNREAD[cfg.algorithm]
    stray = sorted(set(unread) & set(variants[variant]))
    if stray:
        raise ConfigError(f"pretrain.variants.{variant}: {stray}: algorithm {cfg.algorithm!r} never reads them "
                          f"(the settings of {'the GCRL baseline' if cfg.algorithm == 'ocgfn' else 'the OC-GFN'}); "
                          "remove them")
    defaults = {f.name: f.default for f in dataclasses.fields(PretrainConfig)}
    return dataclasses.replace(cfg, **{key: defaults[key] for key in unread})


def method_config(config: dict[str, Any], method: str, env: str | None = None) -> tuple[dict[str, Any], Any]:
    """A method's entry and its settings dataclass (the method's own ``Settings``): the shared
    ``finetune.settings`` it has fields for, then the environment's overrides it has fields for, then
    the method's own settings (all of which must be its fields).

    A ``matched_to: <variant>`` scratch run gets extra steps worth the trajectories that pre-training
    that variant sampled (explorer and OC-GFN rollouts), the compute-matched baseline.
    """
    methods = config["finetune"]["methods"]
    if method not in methods:
        raise ConfigError(f"finetune.methods: no method {method!r}; have {sorted(methods)}")
    entry = methods[method]
    where = f"finetune.methods.{method}"
    try:
        cls = method_class(entry["kind"])
    except ValueError as err:
        raise ConfigError(f"{where}.{err}") from err
    if "pretrained" in entry and not cls.uses_pretrained:
        raise ConfigError(f"{where}.pretrained: kind {entry['kind']!r} adapts no pre-trained model (nor the "
                          f"control); remove the key")
    own_fields = _fields(cls.Settings)
    every = set().union(*(_fields(c.Settings) for c in METHODS.values()))
    shared = config["finetune"].get("settings", {})
    overrides = config["envs"][env].get("finetune", {}) if env is not None else {}
    for label, values in (("finetune.settings", shared), (f"envs.{env}.finetune", overrides)):
        unknown = sorted(set(values) - every)
        if unknown:
            raise ConfigError(f"{label}: unknown key(s) {unknown}; the methods' settings are {sorted(every)}")
        for key, value in values.items():  # each shared value is checked once, under its own key
            owner = next(c.Settings for c in METHODS.values() if key in _fields(c.Settings))
            _check_value(owner, key, value, label)
    values = {k: v for k, v in {**shared, **overrides}.items() if k in own_fields}
    values.update(entry.get("settings", {}))
    for label, layer in (("finetune.settings", shared), (f"envs.{env}.finetune", overrides),
                         (f"{where}.settings", entry.get("settings", {}))):
        if "flow" in layer:  # it would be replaced by the entry's own (default policy) in silence
            raise ConfigError(f"{label}.flow: the flow source is a key of each method entry ({where}.flow), "
                              "not of settings")
    # named where they are written (the shared layers were checked above)
    _check_values(cls.Settings, entry.get("settings", {}), f"{where}.settings")
    if "flow" in own_fields:
        values["flow"] = entry.get("flow", "policy")
    elif "flow" in entry:
        raise ConfigError(f"{where}.flow: kind {entry['kind']!r} takes no flow source")
    cfg = _build(cls.Settings, values, where)
    if entry.get("matched_to"):
        if entry["kind"] != "scratch":
            raise ConfigError(f"{where}.matched_to: only scratch methods are compute-matched")
        have = env_variants(config, env) if env else sorted(config["pretrain"]["variants"])
        if entry["matched_to"] not in have:
            raise ConfigError(f"{where}.matched_to: expected a variant pre-trained on {env or 'every environment'} "
                              f"{have}, whose sampled trajectories it matches; got {entry['matched_to']!r}")
        pre = pretrain_config(config, entry["matched_to"], env)
        cfg.steps += math.ceil(2 * pre.steps * pre.batch_size / cfg.batch_size)
    if cls.uses_pretrained and entry.get("pretrained") == CONTROL:
        conflict = cls.without_weights(cfg)
        if conflict:
            raise ConfigError(f"{where}.{conflict} (the control, {CONTROL!r}, is no trained model)")
    elif cls.uses_pretrained and entry.get("pretrained") not in (env_variants(config, env) if env else
                                                                 config["pretrain"]["variants"]):
        have = env_variants(config, env) if env else sorted(config["pretrain"]["variants"])
        raise ConfigError(f"{where}.pretrained: expected {CONTROL!r} (no pre-training) or one of the variants "
                          f"pre-trained on {env} {have}, got {entry.get('pretrained')!r}")
    elif cls.uses_pretrained and getattr(cfg, "flow", None) == "learned" and pretrain_config(
            config, entry["pretrained"], env).algorithm == "gcrl":
        raise ConfigError(f"{where}.flow: variant {entry['pretrained']!r} is the GCRL baseline (a Q network, no "
                          f"flow head); use flow: policy")
    return entry, cfg


def _check_method(config: dict[str, Any], env_name: str, env, method: str) -> None:
    entry, settings = method_config(config, method, env_name)
    cls = method_class(entry["kind"])
    reason = cls.unsupported(env, settings)
    if reason:  # the key that chose the method: the env's own list, or else the finetune list every env runs
        key = f"envs.{env_name}.methods" if config["envs"][env_name].get("methods") else "finetune.methods"
        raise ConfigError(f"{key}: method {method!r} (kind {entry['kind']}) cannot run on "
                          f"environment {env_name!r}: it {reason}")
    if not cls.uses_pretrained:
        return
    where = f"finetune.methods.{method}.pretrained"
    if cls.uses_descriptor and "descriptor" not in config["envs"][env_name]:
        raise ConfigError(f"envs.{env_name}.descriptor: method {method!r} (kind {entry['kind']}) adapts descriptor "
                          f"outcomes, but the environment defines no descriptor")
    if entry["pretrained"] == CONTROL:
        return
    descriptor = pretrain_config(config, entry["pretrained"], env_name).outcomes == "descriptor"
    if cls.uses_descriptor and not descriptor:
        raise ConfigError(f"{where}: kind {entry['kind']!r} adapts a variant with outcomes: descriptor; "
                          f"{entry['pretrained']!r} conditions on objects")
    if descriptor and not cls.uses_descriptor:
        raise ConfigError(f"{where}: variant {entry['pretrained']!r} conditions on descriptors (outcomes: "
                          f"descriptor); kind {entry['kind']!r} needs object outcomes; use outcome_conversion or "
                          f"outcome_search")


def _check_descriptor(config: dict[str, Any], name: str, env) -> None:
    """The descriptor builds and returns values, its windows hold whole bins, and every descriptor variant can
    use it."""
    spec = config["envs"][name]
    if "descriptor" in spec:
        from pipeline_lib.descriptors import make_descriptor

        try:
            desc = make_descriptor(spec["descriptor"], env)
            desc.values(env.random_outcomes(8, torch.Generator(env.device).manual_seed(0)))
            for window, bounds in spec["descriptor"].get("windows", {}).items():
                try:
                    desc.window_outcomes(bounds)
                except ValueError as err:
                    raise ValueError(f"windows.{window}: {err}") from err
        except ValueError as err:
            raise ConfigError(f"envs.{name}.descriptor: {err}") from err
    for variant in env_variants(config, name):
        cfg = pretrain_config(config, variant, name)
        where = f"pretrain.variants.{variant}"
        if cfg.outcomes != "descriptor":
            continue
        if "descriptor" not in spec:
            raise ConfigError(f"envs.{name}.descriptor: variant {variant!r} pre-trains on descriptor outcomes, but "
                              f"the environment defines no descriptor; add envs.{name}.descriptor: {{name: ...}}")
        for key, bad, why in (("ot", cfg.ot == "reachable", "no reachability test exists for a descriptor; use off"),
                              ("conditioning", cfg.conditioning == "pairs", "pair features need object outcomes"),
                              ("data_goals", cfg.uses_data, "descriptor outcomes take no data set")):
            if bad:
                raise ConfigError(f"{where}.{key}: {getattr(cfg, key)!r} with outcomes: descriptor on {name}: {why}")
        if cfg.descriptor_loss == "classifier":
            from pipeline_lib.ocgfn.descriptor import classifier_unsupported

            reason = classifier_unsupported(env)
            if reason:
                raise ConfigError(f"{pretrain_key(config, variant, name, 'descriptor_loss')}: 'classifier' on {name} "
                                  f"{reason}; use descriptor_loss: tb")


def _check_task(config: dict[str, Any], env_name: str, env, task: str) -> None:
    if task not in config["tasks"]:
        raise ConfigError(f"envs.{env_name}.tasks: unknown task {task!r}; expected one of {sorted(config['tasks'])}")
    entry = config["tasks"][task]
    spec = entry.get("modes") or modes.DEFAULT
    reason = modes.unsupported(env, spec, entry["reward"], entry.get("params", {}))
    if reason:
        implicit = "" if entry.get("modes") else f"; the task names no modes, so {modes.DEFAULT} applies: set one"
        raise ConfigError((f"tasks.{task}.modes.{reason} (environment {env_name!r})" if reason.startswith(
            ("kind", "threshold")) else f"tasks.{task}.modes.kind: {spec.get('kind')!r} {reason} "
                                        f"(environment {env_name!r})") + implicit)
    resources = config.get("resources", "resources")
    params, name = entry.get("params", {}), entry["reward"]
    try:
        files = [] if ":" in name else env.domain_rewards().data_files(name, params, resources)
    except (TypeError, ValueError) as err:  # TypeError: a misspelt keyword of the reward function
        raise ConfigError(f"tasks.{task}.params: {err}") from err
    try:  # an unknown name, or a plug-in that does not import
        fn = reward_function(name, env)
    except ValueError as err:
        raise ConfigError(f"tasks.{task}.reward: {err} (environment {env_name!r}, domain "
                          f"{config['envs'][env_name]['domain']!r})") from err
    root = Path(resources).resolve()
    outside = [str(f) for f in files if not Path(f).resolve().is_relative_to(root)]
    if outside:  # the workflow's data rule fetches into resources, so a file elsewhere would never be made
        raise ConfigError(f"tasks.{task}: reward {name!r} reads {outside}, outside the resources folder {resources!r}; "
                          f"a domain's data_files must name paths under the resources folder bind is given")
    fetched = all(f.exists() for f in files)
    try:  # its parameters, where its data need not be fetched yet (a domain's bind may raise anything)
        reward = bound_reward(name, fn, params, env, resources)
    except ValueError as err:
        raise ConfigError(f"tasks.{task}.params: {err} (environment {env_name!r})") from err
    except Exception as err:  # noqa: BLE001
        if isinstance(err, OSError) and not fetched:
            return  # a bind that reads its data as it binds: checked once the workflow has fetched them
        raise ConfigError(f"tasks.{task}.params: reward {name!r} could not be bound with {params} on environment "
                          f"{env_name!r}: {type(err).__name__}: {err}") from err
    if not fetched:
        return  # fetched by the workflow's data rule, which names a file it cannot fetch; values checked then
    sample = env.random_outcomes(16, torch.Generator(env.device).manual_seed(0))
    if hasattr(env, "check_outcomes"):  # objects a reward must also handle (molecules: the empty one)
        sample = torch.cat([sample, env.check_outcomes().to(sample.device)])
    try:
        validate_reward(reward, sample, name, env.describe)
    except (TypeError, ValueError) as err:  # a reward that fails or returns bad values with these params
        raise ConfigError(f"tasks.{task}.reward: {err}" + (f" (its params: {params})" if params else "")) from err


def _check_data(config: dict[str, Any], env: str) -> None:
    """A data set's source exists, and every job that draws on data has one to draw on."""
    spec = config["envs"][env]
    if "data" in spec:
        from pipeline_lib.datasets import SOURCES

        if spec["data"]["source"] not in SOURCES:
            raise ConfigError(f"envs.{env}.data.source: expected one of {sorted(SOURCES)}, got "
                              f"{spec['data']['source']!r}")
        if not hasattr(domain_class(spec["domain"]), "from_objects"):
            raise ConfigError(f"envs.{env}.data: domain {spec['domain']!r} cannot build objects from a data set "
                              f"(no from_objects); sequence and molecule domains can")
    missing = f"but the environment has no data set; add envs.{env}.data: {{source: ...}}"
    for variant in env_variants(config, env):
        cfg = pretrain_config(config, variant, env)
        if not cfg.uses_data:
            continue
        where = f"pretrain.variants.{variant}"
        if cfg.algorithm == "gcrl":
            raise ConfigError(f"{where}.data_goals: the GCRL baseline takes its goals from the explorer only")
        if cfg.random_goals + cfg.data_goals > 1:
            raise ConfigError(f"{where}.data_goals: random_goals + data_goals = {cfg.random_goals + cfg.data_goals} "
                              f"on {env}; the two fractions of the goals must sum to at most 1")
        if "data" not in spec:
            raise ConfigError(f"envs.{env}.data: pre-training variant {variant!r} draws on data (data_goals "
                              f"{cfg.data_goals}, data_positives {cfg.data_positives}), {missing}")
    for method in env_methods(config, env) if spec["tasks"] and "data" not in spec else []:
        entry, settings = method_config(config, method, env)
        if method_class(entry["kind"]).uses_data(settings):
            raise ConfigError(f"envs.{env}.data: method {method!r} starts from data, {missing}")


def check(config: dict[str, Any]) -> None:
    """Everything a schema cannot say; raises ConfigError naming the key."""
    for name, spec in config["envs"].items():
        if spec["domain"] not in DOMAINS:
            raise ConfigError(f"envs.{name}.domain: unknown domain {spec['domain']!r}; expected one of "
                              f"{sorted(DOMAINS)}")
        for key, known in (("variants", config["pretrain"]["variants"]), ("methods", config["finetune"]["methods"])):
            for item in spec.get(key, []):
                if item not in known:
                    raise ConfigError(f"envs.{name}.{key}: unknown {item!r}; expected some of {sorted(known)}")
        for key in ("tasks", "variants", "methods"):
            twice = sorted({item for item in spec.get(key) or [] if spec[key].count(item) > 1})
            if twice:
                raise ConfigError(f"envs.{name}.{key}: {twice} listed twice; each runs once, list it once")
        conditionings = {variant: pretrain_config(config, variant, name).conditioning
                         for variant in env_variants(config, name)}
        try:
            check_params(spec["domain"], spec["params"], f"envs.{name}.params")
            env = make_env(spec["domain"], spec["params"])
            env.domain_rewards()  # its rewards file imports
            check_contract(env)  # a domain's methods and shapes, probed on a few objects
        except ValueError as err:
            message = str(err)
            raise ConfigError(message if message.startswith("envs.") else f"envs.{name}: {message}") from err
        clash = sorted(set(env.describe(env.initial_states(1))) & set(LABEL_COLUMNS))
        if clash:
            raise ConfigError(f"envs.{name}: {type(env).__name__}.describe() returns {clash}, column names the "
                              f"pipeline's tables label objects with (core.env.LABEL_COLUMNS); rename them")
        objects = env.random_outcomes(2, torch.Generator(env.device).manual_seed(0))
        clash = sorted(set(env.sample_metrics(objects, objects)) & {*LABEL_COLUMNS, *PIPELINE_METRICS})
        if clash:
            raise ConfigError(f"envs.{name}: {type(env).__name__}.sample_metrics() returns {clash}, names of the "
                              f"pipeline's own columns (core.env.LABEL_COLUMNS, tasks.metrics.PIPELINE_METRICS), "
                              f"which they would overwrite; rename them")
        if getattr(env, "headline", "search") not in HEADLINES:
            raise ConfigError(f"envs.{name}: {type(env).__name__}.headline is {env.headline!r}; expected one of "
                              f"{HEADLINES} (the figure the domain's summary leads with)")
        pair_width = getattr(env, "pair_dim", None)
        if "pairs" in conditionings.values() and not (isinstance(pair_width, int) and pair_width > 0):
            variant = next(v for v, conditioning in conditionings.items() if conditioning == "pairs")
            raise ConfigError(f"{pretrain_key(config, variant, name, 'conditioning')}: 'pairs' needs the "
                              f"{spec['domain']!r} environment's pair_dim, the width of its pair_features (a positive "
                              f"int); environment {name!r} has {pair_width!r}")
        for method in env_methods(config, name) if spec["tasks"] else []:  # methods run only on tasks
            _check_method(config, name, env, method)
        _check_data(config, name)
        _check_descriptor(config, name, env)
        for task in spec["tasks"]:
            _check_task(config, name, env, task)


SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def load(path: str | Path) -> dict[str, Any]:
    """A config file as the workflow reads it: its YAML (a syntax error or a repeated key named with its line),
    scientific notation read as numbers, the schema's defaults filled (a key it refuses named); then ``check``."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    config = read_yaml(path)
    read_numbers(config)
    if not SCHEMA.is_file():
        raise ConfigError(f"the config schema {SCHEMA} is missing: the package runs from a checkout of the pipeline")
    try:
        validate(config, str(SCHEMA))
    except WorkflowError as err:
        raise ConfigError((schema_message(err) or str(err)).removeprefix("invalid config: ")) from None
    return config


if __name__ == "__main__":  # python -m pipeline_lib.config FILE...: everything the workflow checks, nothing run
    import sys

    for config_path in sys.argv[1:]:
        try:
            check(load(config_path))
        except (ConfigError, OSError) as error:
            sys.exit(f"{config_path}: invalid config: {error}")
        print(f"{config_path}: valid (YAML, schema, keys and values, domains, rewards on sample objects)")
