rule pretrain:
    input:
        setup=rules.setup.output,
        dataset=pretrain_dataset,
    output:
        model=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/model.pt",
        metrics=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/metrics.parquet",
        bands=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/bands.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/pretrain/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/pretrain/{{variant}}/seed{{seed}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    threads: config["pretrain"]["threads"]
    # the critical path: every adaptation that reads a model waits for it, so pre-training starts first
    priority: 10
    resources:
        gpu=GPU,
        gpu_model=config["gpu_model"],
        mem_mb=4000,
    params:
        job=pretrain_job,
    script:
        "../scripts/pretrain.py"


rule descriptor_outcomes:
    """A descriptor variant's per-outcome success and learned log-counts, and its window sampler (no reward call)."""
    input:
        model=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/model.pt",
    output:
        outcomes=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/outcomes.parquet",
        windows=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/windows.parquet",
        window_samples=f"{RESULTS}/{{env}}/pretrain/{{variant}}/seed{{seed}}/window_samples.parquet",
    log:
        f"{RESULTS}/logs/{{env}}/descriptor_outcomes/{{variant}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{env}}/descriptor_outcomes/{{variant}}/seed{{seed}}.tsv"
    conda:
        "../envs/pipeline.yaml"
    resources:
        gpu=GPU,
        gpu_model=config["gpu_model"],
        mem_mb=4000,
    params:
        job=outcomes_job,
    script:
        "../scripts/descriptor_outcomes.py"
