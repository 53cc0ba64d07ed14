rule collect:
    input:
        pretrain=pretrain_tables("metrics"),
        pretrain_bands=pretrain_tables("bands"),
        outcomes=descriptor_tables("outcomes"),
        windows=descriptor_tables("windows"),
        window_samples=descriptor_tables("window_samples"),
        curves=per_job("curve"),
        evaluation=per_job("metrics"),
        samples=per_job("samples"),
        targets=targets,
    output:
        pretrain=f"{RESULTS}/tables/pretrain.parquet",
        pretrain_bands=f"{RESULTS}/tables/pretrain_bands.parquet",
        outcomes=f"{RESULTS}/tables/outcomes.parquet",
        windows=f"{RESULTS}/tables/windows.parquet",
        window_samples=f"{RESULTS}/tables/window_samples.parquet",
        curves=f"{RESULTS}/tables/finetune_curves.parquet",
        evaluation=f"{RESULTS}/tables/evaluation.parquet",
        samples=f"{RESULTS}/tables/samples.parquet",
        targets=f"{RESULTS}/tables/targets.parquet",
    log:
        f"{RESULTS}/logs/collect.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect.tsv"
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/collect.py"


rule adapt_task:
    input:
        task_evaluations,
    output:
        touch(f"{RESULTS}/{{env}}/tasks/{{task}}.done"),
