import dataclasses
import re

from snakemake.utils import validate

from pipeline_lib.config import ConfigError, check, method_config, pretrain_config

validate(config, schema="../schemas/config.schema.yaml")
try:
    check(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")


RESULTS = config["results"]
GPU = 1 if config["device"].startswith("cuda") else 0


def one_of(names):
    """A wildcard constraint that matches exactly the configured names."""
    return "|".join(re.escape(name) for name in names)


wildcard_constraints:
    env=one_of(config["envs"]),
    variant=one_of(config["pretrain"]["variants"]),
    method=one_of(config["finetune"]["methods"]),
    task=one_of(config["tasks"]),
    seed=r"\d+",


def adaptation_jobs():
    """(env, task, method, seed) of every adaptation job."""
    return [
        (env, task, method, seed)
        for env, spec in config["envs"].items()
        for task in spec["tasks"]
        for method in config["finetune"]["methods"]
        for seed in config["seeds"]
    ]


def pretrain_metrics(wildcards):
    return expand(
        f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/metrics.parquet",
        env=config["envs"],
        variant=config["pretrain"]["variants"],
        seed=config["seeds"],
    )


def per_job(name):
    """Input function: one file per adaptation job (curve, evaluation or samples)."""
    stage = {"curve": "finetune", "metrics": "evaluate", "samples": "sample"}[name]

    def paths(wildcards):
        return [
            f"{RESULTS}/{env}/{stage}/{task}/{method}/seed{seed}/{name}.parquet"
            for env, task, method, seed in adaptation_jobs()
        ]

    return paths


def task_evaluations(wildcards):
    """Every method and seed of one task (the target to rerun one downstream task)."""
    return expand(
        f"{RESULTS}/{wildcards.env}/evaluate/{wildcards.task}/{{method}}/seed{{seed}}/metrics.parquet",
        method=config["finetune"]["methods"],
        seed=config["seeds"],
    )


def targets(wildcards):
    return [
        f"{RESULTS}/{env}/prepare/{task}/target.parquet"
        for env, spec in config["envs"].items()
        for task in spec["tasks"]
    ]


def pretrained_model(wildcards):
    """The OC-GFN a method adapts (none for scratch)."""
    entry = config["finetune"]["methods"][wildcards.method]
    if entry["kind"] == "scratch":
        return []
    return f"{RESULTS}/{wildcards.env}/pretrain/{entry['pretrained']}/seed{wildcards.seed}/model.pt"


# Params carry the resolved settings of each job so that editing them in the config reruns exactly
# the affected jobs (Snakemake's params rerun trigger); the scripts read the same values via config.
def env_spec(env):
    """The environment's definition, without its task list (adding a task must rerun nothing else)."""
    return {k: v for k, v in config["envs"][env].items() if k != "tasks"}


def pretrain_settings(wildcards):
    return {
        "env": env_spec(wildcards.env),
        "settings": dataclasses.asdict(pretrain_config(config, wildcards.variant)),
    }


def finetune_settings(wildcards):
    entry, settings = method_config(config, wildcards.method)
    return {
        "env": env_spec(wildcards.env),
        "task": config["tasks"][wildcards.task],
        "method": entry,
        "settings": dataclasses.asdict(settings),
    }


def task_settings(wildcards):
    return {
        "env": env_spec(wildcards.env),
        "task": config["tasks"][wildcards.task],
    }
