rule setup:
    output:
        f"{RESULTS}/environment.parquet",
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{RESULTS}/logs/setup.log",
    script:
        "../scripts/setup.py"


rule prepare_target:
    input:
        rules.setup.output,
    output:
        f"{RESULTS}/{{env}}/prepare/{{task}}/target.parquet",
    params:
        settings=task_settings,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{RESULTS}/logs/{{env}}/prepare/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/prepare/{{task}}.tsv"
    script:
        "../scripts/prepare_target.py"
