"""Reward-free OC-GFN pre-training of one variant and seed (resumes from its checkpoint)."""
from pipeline_lib.stages import logged, pretrain

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    pretrain(snakemake.config, w.env, w.variant, int(w.seed), snakemake.threads, snakemake.output.model,
             snakemake.output.metrics)
