"""Reward-free OC-GFN pre-training of one variant and seed (resumes from its checkpoint)."""
from pipeline_lib.stages import logged, pretrain

with logged(snakemake.log[0]):
    o = snakemake.output
    pretrain(snakemake.params.job, int(snakemake.wildcards.seed), snakemake.threads, o.model, o.metrics, o.bands)
