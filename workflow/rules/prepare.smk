rule setup:
    output:
        f"{RESULTS}/environment.parquet",
    log:
        f"{RESULTS}/logs/setup.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/setup.py"


if TFBIND_TABLES:

    rule prepare_data:
        output:
            TFBIND_TABLES,
        log:
            f"{RESULTS}/logs/prepare_data.log",
        benchmark:
            f"{RESULTS}/benchmarks/prepare_data.tsv"
        conda:
            "../envs/pipeline.yaml"
        script:
            "../scripts/prepare_data.py"


rule prepare_target:
    input:
        setup=rules.setup.output,
        data=task_data,
    output:
        f"{RESULTS}/{{env}}/prepare/{{task}}/target.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/prepare/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/prepare/{{task}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        settings=task_settings,
    script:
        "../scripts/prepare_target.py"
