"""Exact target distribution R/Z and modes of one downstream task."""
from pipeline_lib.stages import logged, prepare_target

with logged(snakemake.log[0]):
    prepare_target(snakemake.config, snakemake.wildcards.env, snakemake.wildcards.task, snakemake.output[0])
