rule setup:
    output:
        f"{RESULTS}/environment.parquet",
    log:
        f"{RESULTS}/logs/setup.log",
    conda:
        "../envs/pipeline.yaml"
    script:
        "../scripts/setup.py"


rule prepare_target:
    input:
        rules.setup.output,
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
