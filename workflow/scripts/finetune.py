"""Adapt to one downstream task with one method and seed, then sample and evaluate the final sampler."""
from pipeline_lib.stages import finetune, logged

with logged(snakemake.log[0]):
    i, o = snakemake.input, snakemake.output
    pretrained = str(i.pretrained) if i.pretrained else None
    finetune(snakemake.params.job, int(snakemake.wildcards.seed), snakemake.threads, pretrained,
             o.policy, o.curve, o.samples, o.metrics)
