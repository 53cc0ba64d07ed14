"""The paper-style summary page (tables and figures) from the collected parquet tables."""
from pipeline_lib.io import read_parquet
from pipeline_lib.report.summary import summary_page
from pipeline_lib.stages import logged

with logged(snakemake.log[0]):
    i = snakemake.input
    summary_page(read_parquet(i.pretrain), read_parquet(i.evaluation), read_parquet(i.curves),
                 read_parquet(i.environment[0]), list(i.figures), snakemake.output.html, snakemake.output.markdown,
                 budgets=snakemake.params.budgets, per_task=snakemake.params.per_task)
