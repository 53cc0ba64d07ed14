rule sample:
    input:
        policy=rules.finetune.output.policy,
    output:
        samples=f"{RESULTS}/{{env}}/sample/{{task}}/{{method}}/seed{{seed}}/samples.parquet",
    params:
        samples=config["evaluate"]["samples"],
    conda:
        "../envs/pipeline.yaml"
    log:
        f"{RESULTS}/logs/{{env}}/sample/{{task}}/{{method}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/sample/{{task}}/{{method}}/seed{{seed}}.tsv"
    script:
        "../scripts/sample.py"
