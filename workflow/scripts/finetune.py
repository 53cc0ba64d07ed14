"""Adapt to one downstream task with one method and seed, then sample and evaluate the final sampler."""
from pipeline_lib.logs import logged
from pipeline_lib.runtime import cpu_slots
from pipeline_lib.stages import finetune

# at most the host's CPU count of training jobs at once, whatever --cores says (config key cpu_slots)
with logged(snakemake.log[0]), cpu_slots(snakemake.threads, snakemake.config["cpu_slots"]):
    i, o = snakemake.input, snakemake.output
    pretrained = str(i.pretrained) if i.pretrained else None
    finetune(snakemake.params.job, int(snakemake.wildcards.seed), snakemake.threads, pretrained,
             o.policy, o.curve, o.samples, o.metrics)
