"""Record the software and device the pipeline runs with."""
from pipeline_lib.logs import logged
from pipeline_lib.stages import environment_info

with logged(snakemake.log[0]):
    environment_info(snakemake.params.device, snakemake.output[0])
