"""deploy/: the KubeRay RayCluster and the Slurm script, checked without Kubernetes or Slurm.

What would break a user's cluster: the wrong kind or Ray version, pods that run the CPU
trials on the head, a password in the file, root containers, probes that call a program
the image lacks, and study commands with options `tuner run` does not have.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib

import yaml

from tests.conftest import ROOT, run_cli

RAYCLUSTER = yaml.safe_load((ROOT / "deploy" / "kuberay-raycluster.yaml").read_text("utf-8"))
SLURM = ROOT / "deploy" / "slurm-ray.sbatch"


def _pods() -> dict[str, dict]:
    spec = RAYCLUSTER["spec"]
    groups = {"head": spec["headGroupSpec"]}
    groups.update({g["groupName"]: g for g in spec["workerGroupSpecs"]})
    return {name: group["template"]["spec"] for name, group in groups.items()}


def _ray_extra() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    [requirement] = extras["optional-dependencies"]["ray"]
    return requirement


def test_a_ray_cluster_of_the_ray_version_the_extra_installs():
    assert RAYCLUSTER["apiVersion"] == "ray.io/v1" and RAYCLUSTER["kind"] == "RayCluster"
    # ray[default]: KubeRay's health probes ask the dashboard agent, which needs it
    minimum = re.fullmatch(r"ray\[default\]>=([\d.]+),<3", _ray_extra())
    assert minimum, _ray_extra()
    assert RAYCLUSTER["spec"]["rayVersion"].startswith(minimum.group(1))


def test_the_head_runs_the_study_command_and_no_trial():
    assert RAYCLUSTER["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"


def test_pods_run_the_project_image_as_its_non_root_user_with_the_password_from_a_secret():
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    uid = int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))
    assert 'pip install ".[${EXTRAS}]"' in dockerfile  # EXTRAS=postgres,ray builds it
    for name, pod in _pods().items():
        assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": uid}, name
        secrets = {v["name"] for v in pod["volumes"] if "secret" in v}
        [container] = pod["containers"]
        assert container["image"].split(":")[0] in ("tuner", "tuner-gpu"), name
        env = {e["name"]: e["value"] for e in container["env"]}
        user_part = env["TUNER_STORAGE"].split("//")[1].split("@")[0]
        assert ":" not in user_part, f"{name}: a password in TUNER_STORAGE"
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts["/run/secrets"] in secrets
        assert env["TUNER_DB_PASSWORD_FILE"].startswith("/run/secrets/")


def test_probes_need_no_program_the_slim_image_lacks():
    # Without probes of its own, KubeRay adds ones that run wget: not in python:3.11-slim.
    for name, pod in _pods().items():
        [container] = pod["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert "httpGet" in container[probe], f"{name}: {probe}"


def test_the_gpu_group_asks_kubernetes_for_gpus():
    [container] = _pods()["gpu"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"


def _study_commands() -> list[list[str]]:
    """Every `tuner run ... --ray` command in the README, the manifest and the script."""
    texts = [(ROOT / p).read_text("utf-8") for p in ("README.md", "deploy/kuberay-raycluster.yaml")]
    texts.append(SLURM.read_text("utf-8"))
    commands = []
    for text in texts:
        joined = re.sub(r"\\\n\s*(#\s*)?", " ", text)  # continuation lines, also in comments
        for line in joined.splitlines():
            command = re.search(r"(?:^\s*|--\s+)(tuner run \S+\.yaml .*--ray.*)", line)
            if command:
                commands.append(shlex.split(command.group(1).replace('"', "")))
    return commands


def test_every_documented_study_command_uses_real_options_and_shipped_studies():
    commands = _study_commands()
    assert len(commands) >= 4, commands  # README x3, the manifest, the Slurm script
    helped = run_cli("run", "--help")
    assert helped.returncode == 0, helped.stderr
    for words in commands:
        assert (ROOT / words[2]).exists(), f"no study file {words[2]}: {words}"
        for option in (w for w in words if w.startswith("--")):
            assert option in helped.stdout, f"`tuner run` has no {option}: {words}"


def test_the_slurm_script_is_valid_bash_and_joins_every_node_to_one_head():
    checked = subprocess.run(["bash", "-n", str(SLURM)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    script = SLURM.read_text(encoding="utf-8")
    assert script.count("ray start --head") == 1
    assert 'ray start --address "$address"' in script
    assert '--ray "$address"' in script
