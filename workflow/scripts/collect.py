"""Gather the per-job tables into the tables the summary and users read (each figure gathers its own domain's
rows itself: io.gather); pandas only, no torch to import."""
from pipeline_lib.io import TABLE_KEYS, collect
from pipeline_lib.logs import logged

with logged(snakemake.log[0]):
    for name, keys in TABLE_KEYS.items():
        collect(list(snakemake.input[name]), snakemake.output[name], keys)
