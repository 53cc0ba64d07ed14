"""What is known of one downstream task before any search (its exact target where enumerable)."""
from pipeline_lib.logs import logged
from pipeline_lib.stages import prepare_target

with logged(snakemake.log[0]):
    prepare_target(snakemake.params.job, snakemake.output[0])
