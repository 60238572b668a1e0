"""GPU slots: devices found with nvidia-smi, workers pinned, a clear refusal without GPUs."""

from __future__ import annotations

import pytest

from tuner.execution.supervisor import GpuError, detect_gpus, gpu_slots, worker_env


def test_slots_pin_k_workers_per_gpu():
    assert gpu_slots("all", per_gpu=2, found=["0", "1"]) == ["0", "0", "1", "1"]
    assert gpu_slots("1", per_gpu=3, found=["0", "1"]) == ["1", "1", "1"]
    assert worker_env("sqlite:///x.db", threads=2, gpu="1")["CUDA_VISIBLE_DEVICES"] == "1"


def test_unknown_gpu_is_refused_with_the_choices():
    with pytest.raises(GpuError, match=r"no GPU 3 on this machine; choose from 0, 1 or `all`"):
        gpu_slots("0,3", per_gpu=1, found=["0", "1"])


def test_run_with_gpus_on_a_machine_without_one_refuses_before_writing(
    cli, tiny_spec, sqlite_url, tmp_path
):
    if detect_gpus():
        pytest.skip("this machine has a GPU")
    spec = tiny_spec(space={"overrides": {"units": {"high": 64, "default": 32}}})
    done = cli("run", str(spec), "--storage", sqlite_url, "--gpus", "all")
    assert done.returncode != 0
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: --gpus all: no NVIDIA GPU found")
    assert not (tmp_path / "study.db").exists()
