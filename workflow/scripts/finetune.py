"""Adapt to one downstream task with one method and seed."""
from pipeline_lib.stages import finetune, logged

with logged(snakemake.log[0]):
    w = snakemake.wildcards
    pretrained = str(snakemake.input.pretrained) if snakemake.input.pretrained else None
    finetune(snakemake.config, w.env, w.task, w.method, int(w.seed), snakemake.threads, pretrained,
             snakemake.output.policy, snakemake.output.curve)
