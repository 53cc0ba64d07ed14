"""Per-outcome success and the window sampler of one descriptor pre-training variant and seed."""
from pipeline_lib.logs import logged
from pipeline_lib.stages import descriptor_outcomes

with logged(snakemake.log[0]):
    o = snakemake.output
    descriptor_outcomes(snakemake.params.job, int(snakemake.wildcards.seed), snakemake.input.model, o.outcomes,
                        o.windows, o.window_samples)
