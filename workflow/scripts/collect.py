"""Gather the per-job tables into the tables figures and the report read."""
from pipeline_lib.logs import logged
from pipeline_lib.stages import collect

with logged(snakemake.log[0]):
    for name in ("pretrain", "pretrain_bands", "outcomes", "windows", "window_samples", "curves", "evaluation",
                 "samples", "targets"):
        collect(list(snakemake.input[name]), snakemake.output[name])
