import dataclasses
import re

from snakemake.utils import validate

from pipeline_lib.config import (
    ConfigError,
    check,
    env_methods,
    env_variants,
    method_config,
    pretrain_config,
)
from pipeline_lib.tasks.rewards import tfbind_table
from pipeline_lib.stages import is_sequence, tfbind_landscapes

validate(config, schema="../schemas/config.schema.yaml")
try:
    check(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")


RESULTS = config["results"]
RESOURCES = config["resources"]
GRID_ENVS = [env for env in config["envs"] if not is_sequence(config, env)]
MOLECULE_TASKS = [
    (env, task)
    for env, spec in config["envs"].items()
    if spec["domain"] == "molecule"
    for task in spec["tasks"]
]
TFBIND_TABLES = [
    str(tfbind_table(RESOURCES, name)) for name in tfbind_landscapes(config)
]
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
        for method in env_methods(config, env)
        for seed in config["seeds"]
    ]


def pretrain_metrics(wildcards):
    return [
        f"{RESULTS}/{env}/pretrain/{variant}/seed{seed}/metrics.parquet"
        for env in config["envs"]
        for variant in env_variants(config, env)
        for seed in config["seeds"]
    ]


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
        method=env_methods(config, wildcards.env),
        seed=config["seeds"],
    )


def targets(wildcards):
    """Exact targets of the grid tasks (sequence tasks' mode lists stay per task)."""
    return [
        f"{RESULTS}/{env}/prepare/{task}/target.parquet"
        for env in GRID_ENVS
        for task in config["envs"][env]["tasks"]
    ]


def task_data(wildcards):
    """The data file a task's reward reads (TF-Bind-8 tables), fetched by prepare_data."""
    entry = config["tasks"][wildcards.task]
    if entry["reward"] != "tfbind":
        return []
    return str(tfbind_table(RESOURCES, entry["params"]["landscape"]))


def pretrained_model(wildcards):
    """The OC-GFN a method adapts (none for scratch)."""
    entry = config["finetune"]["methods"][wildcards.method]
    if entry["kind"] not in ("exact", "amortized"):
        return []
    return f"{RESULTS}/{wildcards.env}/pretrain/{entry['pretrained']}/seed{wildcards.seed}/model.pt"


# Params carry the resolved settings of each job so that editing them in the config reruns exactly
# the affected jobs (Snakemake's params rerun trigger); the scripts read the same values via config.
def env_spec(env):
    """The environment's definition only: its task, variant and method lists and its settings
    overrides are not part of it (adding a task or a method must rerun nothing else; overrides
    reach each job through its resolved settings)."""
    spec = config["envs"][env]
    return {"domain": spec["domain"], "params": spec["params"]}


def pretrain_settings(wildcards):
    return {
        "env": env_spec(wildcards.env),
        "settings": dataclasses.asdict(
            pretrain_config(config, wildcards.variant, wildcards.env)
        ),
    }


def finetune_settings(wildcards):
    entry, settings = method_config(config, wildcards.method, wildcards.env)
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
