rule sample:
    input:
        policy=rules.finetune.output.policy,
        pretrained=pretrained_model,
    output:
        samples=f"{RESULTS}/{{env}}/sample/{{task}}/{{method}}/seed{{seed}}/samples.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/sample/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/sample/{{task}}/{{method}}/seed{{seed}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    params:
        samples=config["evaluate"]["samples"],
    script:
        "../scripts/sample.py"
