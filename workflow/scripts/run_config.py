"""The configuration this run was given, defaults filled in, as YAML (the report's Configuration entry)."""
from pathlib import Path

import yaml

from pipeline_lib.logs import logged

with logged(snakemake.log[0]):
    Path(snakemake.output[0]).write_text(yaml.safe_dump(dict(snakemake.config), sort_keys=False))
