"""A real SLURM run: tests/slurm/local_cluster.sh starts munge, slurmctld and slurmd on loopback,
runs config/test.yaml through profiles/slurm and checks the results (marker: slurm)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slurm
def test_local_slurm_cluster_runs_the_workflow() -> None:
    if shutil.which("slurmctld") is None or shutil.which("munged") is None:
        pytest.skip("slurm-wlm / munge are not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the local cluster needs root: slurm.conf must sit at /etc/slurm/slurm.conf")
    result = subprocess.run(["bash", str(ROOT / "tests/slurm/local_cluster.sh")], cwd=ROOT, capture_output=True,
                            text=True, timeout=1800)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert "OK:" in result.stdout and "jobs went through sbatch" in result.stdout
