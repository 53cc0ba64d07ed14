"""Exact and sample-based metrics of a final policy."""
from pipeline_lib.stages import evaluate, logged

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    evaluate(snakemake.config, w.env, w.task, w.method, int(w.seed), snakemake.input.policy,
             snakemake.input.samples, snakemake.input.target, snakemake.output[0])
