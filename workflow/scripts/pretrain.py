"""Reward-free OC-GFN pre-training of one variant and seed (resumes from its checkpoint)."""
from pipeline_lib import plan
from pipeline_lib.logs import logged
from pipeline_lib.runtime import cpu_slots
from pipeline_lib.stages import pretrain

# at most the host's CPU count of training jobs at once, whatever --cores says (config key cpu_slots)
with logged(snakemake.log[0]), cpu_slots(snakemake.threads, snakemake.config["cpu_slots"], poll_s=0.25):
    w, o = snakemake.wildcards, snakemake.output
    job = plan.pretrain_job(snakemake.config, w.env, w.variant)  # params.job less checkpoint_every
    pretrain(job, int(w.seed), snakemake.threads, o.model, o.metrics, o.bands)
