# Figures: one rule per figure kind, one job per domain (or per molecule task), each from the parquet of the
# pipeline only (the per-job tables of its domain: the rows of the collected tables it draws, so a rerun task
# redraws only the figures of its own domain), so a new task or method appears without code changes and figure
# changes rerun only the figures and the summary. Colours follow the configured method list (the same colour
# everywhere).
FIGURE_PATHS = {
    (kind, env, task): f"{RESULTS}/figures/{env}/{kind}{'_' + task if task else ''}.png"
    for kind, env, task in FIGURES
}
rule figure_pretrain_success:
    input:
        pretrain=pretrain_tables("metrics"),
    output:
        report(
            f"{RESULTS}/figures/{{env}}/pretrain_success.png",
            caption="../report/pretrain_success.rst",
            category="Pre-training",
            subcategory="{env}",
        ),
    log:
        f"{RESULTS}/logs/figures/{{env}}/pretrain_success.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_pretrain_success.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../scripts/figures.py"


rule figure_pretrain_lengths:
    input:
        pretrain_bands=pretrain_tables("bands"),
    output:
        report(
            f"{RESULTS}/figures/{{env}}/pretrain_lengths.png",
            caption="../report/pretrain_lengths.rst",
            category="Pre-training",
            subcategory="{env}",
        ),
    log:
        f"{RESULTS}/logs/figures/{{env}}/pretrain_lengths.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_pretrain_lengths.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../scripts/figures.py"


rule figure_descriptor:
    input:
        outcomes=descriptor_tables("outcomes"),
    output:
        report(
            f"{RESULTS}/figures/{{env}}/descriptor.png",
            caption="../report/descriptor.rst",
            category="Pre-training",
            subcategory="{env}",
        ),
    log:
        f"{RESULTS}/logs/figures/{{env}}/descriptor.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_descriptor.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../scripts/figures.py"


rule figure_search:
    input:
        curves=per_job("curve"),
    output:
        report(
            f"{RESULTS}/figures/{{env}}/search.png",
            caption="../report/search.rst",
            category="Adaptation",
            subcategory="{env}",
        ),
    params:
        code=REPORT_CODE,
        methods=lambda w: env_methods(config, w.env),
    log:
        f"{RESULTS}/logs/figures/{{env}}/search.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_search.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/figures.py"


rule figure_l1:
    input:
        curves=per_job("curve"),
    output:
        report(
            f"{RESULTS}/figures/{{env}}/l1.png",
            caption="../report/l1.rst",
            category="Adaptation",
            subcategory="{env}",
        ),
    params:
        code=REPORT_CODE,
        methods=lambda w: env_methods(config, w.env),
    log:
        f"{RESULTS}/logs/figures/{{env}}/l1.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_l1.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/figures.py"


rule figure_heatmaps:
    input:
        samples=per_job("samples"),
        targets=targets,
    output:
        report(
            f"{RESULTS}/figures/{{env}}/heatmaps.png",
            caption="../report/heatmaps.rst",
            category="Samples",
            subcategory="{env}",
        ),
    log:
        f"{RESULTS}/logs/figures/{{env}}/heatmaps.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_heatmaps.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../scripts/figures.py"


rule figure_molecules:
    input:
        samples=per_job("samples"),
    output:
        report(
            f"{RESULTS}/figures/{{env}}/molecules_{{task}}.png",
            caption="../report/molecules.rst",
            category="Samples",
            subcategory="{env}",
        ),
    log:
        f"{RESULTS}/logs/figures/{{env}}/molecules_{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/figure_molecules/{{task}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        code=REPORT_CODE,
    script:
        "../scripts/figures.py"


rule summary:
    input:
        pretrain=rules.collect.output.pretrain,
        evaluation=rules.collect.output.evaluation,
        curves=rules.collect.output.curves,
        windows=rules.collect.output.windows,
        environment=rules.setup.output,
        figures=list(FIGURE_PATHS.values()),
    output:
        html=report(
            f"{RESULTS}/report/summary.html",
            caption="../report/summary.rst",
            category="Summary",
        ),
        markdown=f"{RESULTS}/report/summary.md",
    params:
        code=REPORT_CODE,
        budgets={env: spec.get("budget") for env, spec in config["envs"].items()},
        per_task=plan.per_task_envs(config),
        twins=plan.control_twins(config),
        models=plan.adapted_models(config),
        figures=[[kind, env, task] for kind, env, task in FIGURES],
        headlines={env: plan.headline_figure(config, env) for env in config["envs"] if config["envs"][env]["tasks"]},
    log:
        f"{RESULTS}/logs/summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/summary.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/summary.py"


rule run_config:
    """The resolved configuration of this run (defaults filled in) as YAML, for the report's readers; rewritten
    whenever the config changes (its params), and only once the summary it describes is written: a run that fails
    leaves the config of the report on disk, not its own."""
    input:
        rules.summary.output,
    output:
        report(f"{RESULTS}/report/config.yaml", caption="../report/config.rst", category="Configuration"),
    params:
        config=json.dumps(config, sort_keys=True, default=str),
    log:
        f"{RESULTS}/logs/run_config.log",
    benchmark:
        f"{RESULTS}/benchmarks/run_config.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/run_config.py"
