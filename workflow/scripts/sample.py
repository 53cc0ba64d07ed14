"""Sample terminal objects from a final policy."""
from pipeline_lib.stages import logged, sample

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    sample(snakemake.config, w.env, w.task, w.method, int(w.seed), snakemake.input.policy, snakemake.output.samples)
