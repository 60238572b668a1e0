"""The GPU extra: ``pip install -e '.[gpu]'`` resolves, and the image's GPU variant
(compose's worker-gpu) installs that same extra."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import pytest
import yaml

from tests.conftest import ROOT


def _gpu_extra() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return pyproject["project"]["optional-dependencies"]["gpu"]


def test_the_gpu_extra_brings_tensorflow_with_cuda():
    assert any(re.match(r"tensorflow\[and-cuda\]", req) for req in _gpu_extra()), _gpu_extra()


def test_the_gpu_image_installs_the_gpu_extra():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    extras = compose["services"]["worker-gpu"]["build"]["args"]["EXTRAS"].split(",")
    assert "gpu" in extras
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^RUN pip install "\.\[\$\{EXTRAS\}\]"$', dockerfile, flags=re.MULTILINE)


@pytest.mark.slow
def test_pip_resolves_the_gpu_extra():
    # Resolution only (nothing is installed): needs the package index, as CI has.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "-e", ".[gpu]"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "nvidia-cudnn-cu12" in done.stdout  # CUDA's libraries came with tensorflow
