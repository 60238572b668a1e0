"""Every shell command in README.md, run as a reader would, or mapped to the test that runs it.

The README's fenced ``bash`` blocks are read at collection time; ``test_every_command_is_
accounted_for`` fails when a command is added or changed without saying here how it runs.
Commands run verbatim with ``bash -c`` in a sandbox folder holding ``studies/`` and
``search_spaces/`` and a ``tuner`` console script on ``PATH``, block after block (later
blocks use the studies earlier ones made), with these reductions, each one stated:

- the sandbox's example specs train on 300 rows for at most 2 epochs, 3 trials by default
  (``REDUCED``): the shipped ones take minutes each;
- ``REWRITES`` changes a few arguments (fewer trials or workers, the test's PostgreSQL
  databases instead of the README's hosts);
- ``ENV`` gives some commands their own ``$TUNER_STORAGE`` (the README's own override),
  where an example would otherwise meet the study an earlier example made.

Shell completion lines run in their shell when it is installed, else the script is only
generated. Commands the suite cannot run as they stand (installing, the suite itself, Docker,
Kubernetes, a Ray head, GPUs) are mapped to the tests that cover them (``ELSEWHERE``); the
installs are what the fresh-clone check does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import optuna
import pytest
import yaml

from tests.conftest import ROOT, fresh_postgres_database

README = (ROOT / "README.md").read_text(encoding="utf-8")

# The README's hosts, and the databases that stand in for them.
TOUR_PG = "postgresql://postgres@127.0.0.1/tuner"
COMPOSE_PG = "postgresql://tuner@db/tuner"

REDUCED = {
    "digits-mlp": {"budget": {"n_trials": 3}},
    "digits-size": {"budget": {"n_trials": 8}},  # `retrain --trial 7` needs trial 7
    "diabetes-regression": {"budget": {"n_trials": 3}},
}
REWRITES = {
    "--n-trials 40 --resume": "--n-trials 5 --resume",
    "--resume --n-trials 25": "--resume --n-trials 13",  # `retrain --trial 12` needs trial 12
    "--workers 4": "--workers 2",  # two cores
}
# Commands that would otherwise meet a study an earlier example made (exists: exit 2).
# Keyed by the command as written (comment included, spaces squeezed), else without it.
ENV = {
    "tuner run studies/digits-mlp.yaml --tiers 1-2": {"TUNER_STORAGE": "sqlite:///tiers.db"},
}
# Exit codes other than 0 that the README itself promises.
EXPECTED_RC = {
    "tuner storage doctor --workers 8": (0, 1),  # "exit 1 on a warning"
}
ELSEWHERE = {
    "pip install -e .": "the fresh clone + venv check (installs; not part of the suite)",
    "pip install -e '.[test]'": "the fresh clone + venv check (installs; not part of the suite)",
    "python -m pytest -n 2 --dist loadfile": "tests/test_packaging.py::"
    "test_ci_runs_the_readme_test_command (the suite itself)",
    "pip install -e '.[ray,postgres]'": "the fresh clone + venv check (installs)",
    "tuner dashboard": "tests/test_dashboard.py::test_dashboard_shows_the_study_and_its_trial_count"
    " (it serves until stopped)",
    "tuner run studies/mnist-cnn.yaml --gpus all --trials-per-gpu 2": "tests/test_gpu_slots.py::"
    "test_run_with_gpus_on_a_machine_without_one_refuses_before_writing (no GPU here)",
    "docker compose up --scale worker=8": "tests/test_compose.py (no Docker engine here)",
    "ray start --head": "tests/ray_cluster.py (starts `ray start --head` for tests/test_ray.py)",
    "tuner run studies/digits-mlp.yaml --storage postgresql://tuner@db/tuner --ray auto "
    "--workers 8": "tests/test_ray.py::test_a_killed_actor_comes_back_and_its_trial_runs_again",
    "tuner run studies/mnist-cnn.yaml --storage postgresql://tuner@db/tuner --ray auto --gpus "
    "all --trials-per-gpu 2": "tests/test_ray.py::"
    "test_gpu_shares_four_actors_on_two_gpus_run_exactly_the_budget",
    "kubectl apply -f deploy/kuberay-raycluster.yaml": "tests/test_deploy.py (no cluster here)",
    "kubectl exec -it $(kubectl get pod -l ray.io/node-type=head -o name) -- tuner run "
    "studies/digits-mlp.yaml --resume --ray auto --workers 8": "tests/test_deploy.py::"
    "test_every_documented_study_command_uses_real_options_and_shipped_studies",
}
# Set-up a command needs that the README leaves to the reader's own history.
OLD_STUDY = "tuner studies delete old-study"


@dataclass(frozen=True)
class Command:
    block: int
    text: str  # as the README writes it, continuation lines joined

    @property
    def bare(self) -> str:
        return re.sub(r"\s+#.*$", "", self.text).strip()


def readme_commands() -> list[Command]:
    """Every command of every fenced bash block, ``&&`` chains split, in README order."""
    commands = []
    for block, match in enumerate(re.finditer(r"```bash\n(.*?)```", README, re.S)):
        joined = match.group(1).replace("\\\n", " ")
        for line in joined.splitlines():
            line = re.sub(r"\s+", " ", line).strip()
            if not line or line.startswith("#"):
                continue
            commands.extend(Command(block, part.strip()) for part in line.split(" && "))
    return commands


COMMANDS = readme_commands()
BLOCKS = sorted({c.block for c in COMMANDS})


def test_every_command_is_accounted_for():
    for command in COMMANDS:
        if command.bare in ELSEWHERE:
            test = ELSEWHERE[command.bare].split(" ")[0]
            path, _, name = test.partition("::")
            if path.startswith("tests/"):
                text = (ROOT / path).read_text(encoding="utf-8")
                assert not name or f"def {name}(" in text, f"{test} does not exist"
    unused = [k for k in [*REWRITES, *ENV, *EXPECTED_RC, *ELSEWHERE] if not _used(k)]
    assert not unused, f"README no longer has {unused}: update tests/test_readme.py"


def test_the_two_commands_are_at_the_top():
    section = README.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    assert "pip install -e . && tuner run studies/digits-mlp.yaml" in section
    assert "pip install -e '.[test]' && python -m pytest -n 2 --dist loadfile" in section


def _used(key: str) -> bool:
    return any(key in c.text or key == c.bare for c in COMMANDS)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A reader's folder: reduced example specs, the spaces, `tuner` on PATH, two databases."""
    folder = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "search_spaces", folder / "search_spaces")
    (folder / "studies").mkdir()
    for spec in (ROOT / "studies").glob("*.yaml"):
        raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
        raw["data"]["max_rows"] = 300
        raw["training"]["max_epochs"] = min(2, raw["training"]["max_epochs"])
        raw.update(REDUCED.get(raw["name"], {"budget": {"n_trials": 3}}))
        (folder / "studies" / spec.name).write_text(yaml.safe_dump(raw, sort_keys=False))
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "tuner"
    launcher.write_text(f"#!{sys.executable}\nimport sys\nfrom tuner.cli import main\n"
                        "sys.exit(main())\n")  # fmt: skip
    launcher.chmod(0o755)
    with fresh_postgres_database() as tour, fresh_postgres_database() as compose:
        yield {"cwd": folder, "bin": bin_dir, "pg": {TOUR_PG: tour, COMPOSE_PG: compose}}


def _run(command: Command, sandbox: dict) -> subprocess.CompletedProcess[str]:
    text = command.bare
    for old, new in {**REWRITES, **sandbox["pg"]}.items():
        text = text.replace(old, new)
    env = {k: v for k, v in os.environ.items() if k != "TUNER_STORAGE"}
    env.update(
        PYTHONPATH=str(ROOT),
        PATH=f"{sandbox['bin']}{os.pathsep}{env.get('PATH', '')}",
        **ENV.get(command.text, ENV.get(command.bare, {})),
    )
    answer = ""
    if command.bare == OLD_STUDY:  # the reader has an old study to delete
        optuna.create_study(study_name="old-study", storage="sqlite:///" +
                            str(sandbox["cwd"] / "tuner.db"))  # fmt: skip
        answer = "y\n"
    shell = next((s for s in ("zsh", "fish") if f"{s}_source" in text), "bash")
    if shutil.which(shell) is None:  # generate the completion script only
        shell, text = "bash", text.replace('eval "$(', "").replace(')"', "").split(" |")[0]
    return subprocess.run(
        [shell, "-c", text], cwd=sandbox["cwd"], env=env, capture_output=True, text=True,
        timeout=900, input=answer,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("block", BLOCKS)
def test_readme_block_runs(block: int, sandbox: dict):
    for command in (c for c in COMMANDS if c.block == block):
        if command.bare in ELSEWHERE:
            continue
        done = _run(command, sandbox)
        where = f"README command `{command.text}`"
        assert done.returncode in EXPECTED_RC.get(command.bare, (0,)), (
            f"{where} exited {done.returncode}: {done.stderr[-2000:]}"
        )
        assert "Traceback" not in done.stderr, f"{where}: {done.stderr[-2000:]}"
        stray = [ln for ln in done.stderr.splitlines() if re.match(r"\[[WIE] \d{4}-", ln)]
        assert not stray, f"{where} let log lines through: {stray[:3]}"
    if any("tuner report digits-mlp " in c.text for c in COMMANDS if c.block == block):
        assert (sandbox["cwd"] / "digits-mlp-report.html").stat().st_size > 10_000
