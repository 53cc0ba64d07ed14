# Adaptation, sampling and evaluation of one (task, method, seed) are one job: sampling and scoring the
# final sampler take seconds and read everything the adaptation holds in memory.
rule finetune:
    input:
        setup=rules.setup.output,
        data=ancient_data(task_data),
        pretrained=pretrained_model,
        dataset=finetune_dataset,
    output:
        policy=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/policy.pt",
        curve=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/curve.parquet",
        samples=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/samples.parquet",
        metrics=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/metrics.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: config["finetune"]["threads"]
    resources:
        gpu=GPU,
        gpu_model=config["gpu_model"],
        mem_mb=4000,
    params:
        job=finetune_job,
    script:
        "../scripts/finetune.py"
