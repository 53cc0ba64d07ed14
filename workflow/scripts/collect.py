"""Gather the per-job tables into the tables figures and the report read (pandas only: no torch to import)."""
from pipeline_lib.io import TABLE_KEYS, collect
from pipeline_lib.logs import logged

with logged(snakemake.log[0]):
    for name, keys in TABLE_KEYS.items():
        collect(list(snakemake.input[name]), snakemake.output[name], keys)
