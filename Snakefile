from snakemake.utils import min_version

min_version("9.0")


# `--configfile X` replaces the default config instead of being merged into it.
if not workflow.overwrite_configfiles:
    # Snakemake names no line for broken YAML; read_yaml does (for a --configfile: python -m pipeline_lib.config FILE)
    if os.path.exists("config/config.yaml"):
        from pipeline_lib.config import ConfigError, read_yaml

        try:
            read_yaml("config/config.yaml")
        except ConfigError as err:
            raise WorkflowError(f"invalid config: {err}")

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


# Jobs of seconds that read tables and draw, never train: on a cluster they run where Snakemake runs instead of
# each waiting in the queue (19 such jobs took 5 min 25 s through a local SLURM queue, 40 s in place).
localrules:
    all,
    adapt_task,
    collect,
    figure_pretrain_success,
    figure_pretrain_lengths,
    figure_descriptor,
    figure_search,
    figure_l1,
    figure_heatmaps,
    figure_molecules,
    summary,
    run_config,


rule all:
    default_target: True
    input:
        rules.summary.output,
        rules.run_config.output,


# A training job keeps its last checkpoint (its trained state) until a run ends without error: a run stopped early
# (Ctrl-C, SIGTERM, a failed job) keeps every one, so the same command, --forcerun included, restores the forced jobs
# that had finished instead of training them again; the next run that succeeds removes those of finished jobs.
onsuccess:
    drop_checkpoints()
