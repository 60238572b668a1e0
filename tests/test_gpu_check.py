"""benchmarks/gpu_check.py cannot rot: its --dry-run runs every step on the CPU and
prints (and writes) the table the lead reads off a lent GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

ROWS = [
    "| devices ",
    "| trials/hour | digits-mlp, 1/GPU ",
    "| trials/hour | digits-mlp, 2/GPU ",
    "| trials/hour | digits-mlp, 4/GPU ",
    "| trials/hour | cifar-cnn, 1/GPU ",
    "| trials/hour | cifar-cnn, 2/GPU ",
    "| trials/hour | cifar-cnn, 4/GPU ",
    "| out of memory ",
    "| --recycle-after 1 ",
    "| epoch time | cifar-cnn float32 ",
    "| epoch time | cifar-cnn mixed precision ",
    "| epoch time | cifar-cnn XLA ",
    "| epoch time | cifar-cnn mixed + XLA ",
]


@pytest.mark.slow
def test_the_dry_run_checks_every_step_and_writes_the_table(tmp_path):
    out = tmp_path / "table.txt"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = out.read_text(encoding="utf-8")
    assert table in done.stdout
    lines = table.splitlines()
    for row in ROWS:
        [line] = [line for line in lines if line.startswith(row)]
        assert "FAILED" not in line and "NOT OK" not in line, line
    assert "trials/hour" in table and "TensorFlow sees 0 GPU(s)" in table
    oom = next(line for line in lines if line.startswith("| out of memory "))
    assert "OK: trials [('FAIL', 'out of memory'), ('COMPLETE', None)]" in oom
