rule evaluate:
    input:
        policy=rules.finetune.output.policy,
        samples=rules.sample.output.samples,
        target=rules.finetune.input.target,
    output:
        f"{RESULTS}/{{env}}/evaluate/{{task}}/{{method}}/seed{{seed}}/metrics.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/evaluate/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/evaluate/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/evaluate.py"


rule collect:
    input:
        pretrain=pretrain_metrics,
        curves=per_job("curve"),
        evaluation=per_job("metrics"),
        samples=per_job("samples"),
        targets=targets,
    output:
        pretrain=f"{RESULTS}/tables/pretrain.parquet",
        curves=f"{RESULTS}/tables/finetune_curves.parquet",
        evaluation=f"{RESULTS}/tables/evaluation.parquet",
        samples=f"{RESULTS}/tables/samples.parquet",
        targets=f"{RESULTS}/tables/targets.parquet",
    log:
        f"{RESULTS}/logs/collect.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/collect.py"


rule adapt_task:
    input:
        task_evaluations,
    output:
        touch(f"{RESULTS}/{{env}}/tasks/{{task}}.done"),
