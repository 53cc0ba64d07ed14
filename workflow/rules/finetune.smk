rule finetune:
    input:
        target=f"{RESULTS}/{{env}}/prepare/{{task}}/target.parquet",
        pretrained=pretrained_model,
    output:
        policy=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/policy.pt",
        curve=f"{RESULTS}/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}/curve.parquet",
    params:
        settings=finetune_settings,
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{RESULTS}/logs/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/finetune/{{task}}/{{method}}/seed{{seed}}.tsv"
    threads: config["finetune"]["threads"]
    resources:
        gpu=GPU,
        mem_mb=4000,
    script:
        "../scripts/finetune.py"
