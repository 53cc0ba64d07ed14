"""Sample terminal objects from a final policy."""
from pipeline_lib.stages import logged, sample

with logged(snakemake.log[0]):
    w, i = snakemake.wildcards, snakemake.input
    pretrained = str(i.pretrained) if i.pretrained else None
    sample(snakemake.config, w.env, w.task, w.method, int(w.seed), i.policy, snakemake.output.samples, pretrained)
