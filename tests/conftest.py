"""Shared fixtures of the unit tests: one torch thread and config/test.yaml after schema validation."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml

torch.set_num_threads(1)

_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def _validated_test_config() -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load((_ROOT / "config/test.yaml").read_text())
    validate(config, str(_ROOT / "workflow/schemas/config.schema.yaml"))
    return config


@pytest.fixture
def test_config(_validated_test_config: dict) -> dict:
    """config/test.yaml validated by the schema (defaults filled); a fresh copy per test, free to mutate."""
    return copy.deepcopy(_validated_test_config)
