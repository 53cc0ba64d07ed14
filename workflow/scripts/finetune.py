"""Adapt to one downstream task with one method and seed, then sample and evaluate the final sampler."""
from pipeline_lib import plan
from pipeline_lib.logs import logged
from pipeline_lib.runtime import cpu_slots
from pipeline_lib.stages import finetune

# at most the host's CPU count of training jobs at once, whatever --cores says (config key cpu_slots)
with logged(snakemake.log[0]), cpu_slots(snakemake.threads, snakemake.config["cpu_slots"]):
    w, i, o = snakemake.wildcards, snakemake.input, snakemake.output
    job = plan.finetune_job(snakemake.config, w.env, w.task, w.method)  # params.job less checkpoint_every
    pretrained = str(i.pretrained) if i.pretrained else None
    finetune(job, int(w.seed), snakemake.threads, pretrained, o.policy, o.curve, o.samples, o.metrics)
