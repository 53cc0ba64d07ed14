"""One truth for the dependencies: pyproject.toml, environment.yml and the rules' conda env list the same
packages with the same version constraints (the rule env omits snakemake, which runs it)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

ROOT = Path(__file__).resolve().parents[1]
NOT_PACKAGES = {"python", "pip"}


def _parse(requirements: list[str]) -> dict[str, str]:
    """name (lower case, '-' for '_') -> version constraint, from requirement strings."""
    out = {}
    for req in requirements:
        req = req.split("#")[0].strip()
        if not req or req.startswith("-e"):
            continue
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", req).groups()
        out[name.lower().replace("_", "-")] = spec.replace(" ", "")
    return out


def _conda(path: Path) -> dict[str, str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    flat = [d for d in deps if isinstance(d, str)] + [p for d in deps if isinstance(d, dict) for p in d["pip"]]
    return {k: v for k, v in _parse(flat).items() if k not in NOT_PACKAGES}


def test_dependency_lists_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = _parse(project["dependencies"])
    tests = _parse(project["optional-dependencies"]["test"])
    conda = _conda(ROOT / "environment.yml")
    rule_env = _conda(ROOT / "workflow/envs/pipeline.yaml")
    assert {k: v for k, v in conda.items() if k not in tests} == runtime, "environment.yml vs pyproject.toml"
    assert set(conda) - set(runtime) <= set(tests), "environment.yml lists packages pyproject.toml does not"
    assert rule_env == {k: v for k, v in runtime.items() if k != "snakemake"}, "workflow/envs/pipeline.yaml"


def test_parser_sees_a_drift() -> None:
    assert _parse(["torch==2.13.0", "rdkit>=2024.3  # chemistry"]) == {"torch": "==2.13.0", "rdkit": ">=2024.3"}
    assert _parse(["ViennaRNA>=2.6"]) != _parse(["ViennaRNA>=2.7"])
