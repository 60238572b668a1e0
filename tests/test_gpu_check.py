"""benchmarks/gpu_check.py cannot rot: its --dry-run runs every step on the CPU and
prints (and writes) the table the lead reads off a lent GPU machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

ROWS = [  # (check, setting) of every row the table must have
    ("devices", "tensorflow"),
    *[("trials/hour", f"{m}, {k}/GPU") for m in ("digits-mlp", "cifar-cnn") for k in (1, 2)],
    ("out of memory", "2**40-weight model, then a small one"),
    ("--recycle-after 1", "2 trials"),
    *[("epoch time", f"cifar-cnn {mode}") for mode in ("float32", "mixed precision", "XLA")],
    ("epoch time", "cifar-cnn mixed + XLA"),
]


def rows_of(table: str) -> dict[tuple[str, str], str]:
    """The table's rows, by (check, setting), to their result."""
    rows = {}
    for line in table.splitlines()[3:]:  # a title, the header and its rule first
        check, setting, result = (cell.strip() for cell in line.strip("|").split("|", 2))
        rows[(check, setting.split(" ")[0] if check == "devices" else setting)] = result
    return rows


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
    rows = rows_of(table)
    assert sorted(rows) == sorted(ROWS)
    for row, result in rows.items():
        assert "FAILED" not in result and "NOT OK" not in result, (row, result)
    assert rows[("devices", "tensorflow")].startswith("TensorFlow sees 0 GPU(s)")
    oom = rows[("out of memory", "2**40-weight model, then a small one")]
    assert oom.startswith("OK: trials [('FAIL', 'out of memory'), ('COMPLETE', None)]")
