rule setup:
    output:
        f"{RESULTS}/environment.parquet",
    log:
        f"{RESULTS}/logs/setup.log",
    benchmark:
        f"{RESULTS}/benchmarks/setup.tsv"
    conda:
        "../envs/pipeline.yaml"
    # it checks the configured device and records the GPU: on a cluster it needs the GPU the training jobs get
    resources:
        gpu=GPU,
        gpu_model=config["gpu_model"],
    params:
        device=config["device"],
    script:
        "../scripts/setup.py"


# One job per data file, so that adding a task fetches only its own file and reruns nothing else.
rule prepare_data:
    output:
        f"{RESOURCES}/{{datafile}}",
    wildcard_constraints:
        datafile=one_of(DATA_FILES),
    log:
        f"{RESULTS}/logs/prepare_data/{{datafile}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/data/prepare_data/{{datafile}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        job=data_job,
    script:
        "../scripts/prepare_data.py"


# An environment's data set (envs.NAME.data): the objects of a public set it can build, with a held-out split.
rule prepare_dataset:
    input:
        setup=rules.setup.output,
    output:
        f"{RESULTS}/{{env}}/data/dataset.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/data/dataset.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/data/dataset.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        job=dataset_job,
    script:
        "../scripts/prepare_dataset.py"


rule prepare_target:
    input:
        setup=rules.setup.output,
        data=ancient_data(task_data),
    output:
        f"{RESULTS}/{{env}}/prepare/{{task}}/target.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/prepare/{{task}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/prepare/{{task}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        job=target_job,
    script:
        "../scripts/prepare_target.py"
