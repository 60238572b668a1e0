"""docker-compose.yml and Dockerfile, checked without a Docker engine.

Structure, the health check and start-up order, the security promises (dashboard on
127.0.0.1 only, non-root workers, password from a secret), and that every tuner command
the stack runs exists with every option it passes.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT, run_cli

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
TUNER_SERVICES = ["init", "worker", "worker-gpu", "dashboard"]


def test_postgres_has_a_healthcheck_and_a_volume():
    db = SERVICES["db"]
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"])
    assert db["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")


def test_start_up_order_init_after_healthy_db_workers_after_init():
    assert SERVICES["init"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("worker", "worker-gpu", "dashboard"):
        depends = SERVICES[name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["init"]["condition"] == "service_completed_successfully"


def test_dashboard_is_published_on_localhost_only():
    ports = SERVICES["dashboard"]["ports"]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)
    for name, service in SERVICES.items():
        if name != "dashboard":
            assert "ports" not in service, f"{name} must not publish ports"


def test_workers_scale_run_as_non_root_and_gpu_variant_reserves_devices():
    worker = SERVICES["worker"]
    assert "container_name" not in worker  # a fixed name would forbid --scale
    assert worker["stop_grace_period"] == "15s"
    gpu = SERVICES["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert "TZ=UTC" in dockerfile


def test_no_password_in_the_file():
    for name in TUNER_SERVICES:
        env = SERVICES[name]["environment"]
        assert (
            "@db" in env["TUNER_STORAGE"]
            and ":" not in env["TUNER_STORAGE"].split("//")[1].split("@")[0]
        )
        assert env["TUNER_DB_PASSWORD_FILE"] == "/run/secrets/db_password"


@pytest.mark.parametrize("service", TUNER_SERVICES)
def test_every_command_is_a_real_tuner_command(service):
    args = SERVICES[service]["command"]
    words = [a for a in args if not a.startswith("-")]
    options = [a.split("=")[0] for a in args if a.startswith("--")]
    # The command path is the leading words that name (sub)commands, e.g. `run`, `worker`.
    path = words[:1]
    helped = run_cli(*path, "--help")
    assert helped.returncode == 0, helped.stderr
    for option in options:
        assert option in helped.stdout, f"{service}: `tuner {path[0]}` has no {option}"
    if path == ["run"]:
        assert (ROOT / words[1]).exists(), f"{service}: no study file {words[1]}"


def test_workers_join_the_study_that_init_creates():
    spec_file = ROOT / SERVICES["init"]["command"][1]
    name = yaml.safe_load(spec_file.read_text(encoding="utf-8"))["name"]
    for service in ("worker", "worker-gpu"):
        assert SERVICES[service]["command"][:2] == ["worker", name]


def test_each_image_tag_is_built_one_way():
    # Two services building one tag with different build args overwrite each other's image
    # (`--profile gpu` would leave the CPU services on the GPU build, or the reverse).
    builds: dict[str, list[tuple[str, object]]] = {}
    for name, service in SERVICES.items():
        if "build" in service:
            build = service["build"]
            args = build.get("args") if isinstance(build, dict) else None
            builds.setdefault(service["image"], []).append((name, args))
    for image, users in builds.items():
        assert len({repr(args) for _, args in users}) == 1, f"{image} built as {users}"
    assert SERVICES["worker-gpu"]["image"] != SERVICES["worker"]["image"]


def test_retrained_models_land_on_a_volume_the_dashboard_reads():
    from tuner.outcome.retrain import default_artifact_dir

    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    workdir = re.findall(r"^WORKDIR\s+(\S+)", dockerfile, flags=re.MULTILINE)[-1]
    # Where `tuner retrain` puts the artifact store for the stack's PostgreSQL storage.
    store = f"{workdir}/{default_artifact_dir(SERVICES['worker']['environment']['TUNER_STORAGE'])}"
    assert f"chown tuner {store}" in dockerfile, "the non-root user must be able to write it"
    assert "artifacts" in COMPOSE["volumes"]
    for name in [*TUNER_SERVICES, "dashboard"]:
        assert f"artifacts:{store}" in SERVICES[name]["volumes"], name
    assert f"--artifact-dir {store}" in " ".join(SERVICES["dashboard"]["command"])
