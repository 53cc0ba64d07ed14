rule finetune:
    input:
        target=f"{RESULTS}/{{env}}/prepare/{{task}}/target.parquet",
        pretrained=pretrained_model,
    output:
        policy=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/policy.pt",
        curve=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/curve.parquet",
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
        settings=finetune_settings,
    script:
        "../scripts/finetune.py"
