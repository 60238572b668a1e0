"""Hostile files: how long and how much memory `tuner` takes to refuse each.

Writes the files of ``tests/test_hostile_inputs.py`` (the 1 KB alias bombs in
``space.fixed`` and in a ``condition``, a 59 MB spec, ``--tiers 1-1000000000``, a
repeated key) and runs the CLI on each as a subprocess, under an address-space limit
(``--limit-gb``, default 4) and a timeout (``--timeout``, default 120 s), so a checkout
that expands a bomb is stopped rather than swapping. Baseline in the same run: `tuner
space validate` on the shipped space (a valid file: the floor of any command that reads
YAML). With ``--before DIR`` the same files also go to another checkout (e.g. ``git
archive main | tar -x -C DIR``). Prints wall seconds, peak resident memory (the child's
``ru_maxrss``), exit code and ratios to the baseline, median of ``--reps`` rounds.

Target (issue 15): each refused within about a second, in bounded memory, exit 2.
Run: ``python benchmarks/hostile_inputs.py [--reps 3] [--before DIR]`` (~1 min; with
``--before`` on a checkout without the fixes, several minutes).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_hostile_inputs import CASES, _write  # noqa: E402  (the same files)

NAMES = ("alias-bomb-fixed", "alias-bomb-condition", "spec-59-mb", "tiers-billion")
NAMES += ("duplicate-spec-key",)


def run(args: list[str], *, cwd: Path, checkout: Path, limit: int, timeout: float) -> tuple:
    """(wall seconds, peak RSS MiB, exit code or 'timeout') of ``tuner ARGS``."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    env.pop("TUNER_STORAGE", None)
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: limit its address space, then become tuner
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
        os.execve(sys.executable, [sys.executable, "-m", "tuner", *args], env)
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - start > timeout:
            os.kill(pid, 9)
            _, status, usage = os.wait4(pid, 0)
            return time.perf_counter() - start, usage.ru_maxrss / 1024, "timeout"
        time.sleep(0.02)
    code = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another checkout to compare")
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    options = parser.parse_args()
    limit = int(options.limit_gb * 2**30)
    checkouts = {"this": ROOT, **({"before": options.before.resolve()} if options.before else {})}
    print(f"Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    cases = [c for c in CASES if c.id in NAMES]
    results: dict[tuple[str, str], list[tuple]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folders = {}
        for case in cases:
            folders[case.id] = Path(tmp, case.id)
            folders[case.id].mkdir()
            _write(case, folders[case.id])
        space = str(ROOT / "search_spaces" / "importance-ranked.yaml")
        runs = [("baseline: valid space", ["space", "validate", space], Path(tmp))]
        for case in cases:
            args = [*case.args, "--storage", f"sqlite:///{folders[case.id]}/s.db"]
            runs.append((case.id, args if args[0] == "run" else list(case.args), folders[case.id]))
        for _ in range(options.reps):
            for label, checkout in checkouts.items():
                for name, args, cwd in runs:
                    figures = run(
                        args, cwd=cwd, checkout=checkout, limit=limit, timeout=options.timeout
                    )
                    results.setdefault((label, name), []).append(figures)
    base_s = statistics.median(r[0] for r in results[("this", runs[0][0])])
    base_mb = statistics.median(r[1] for r in results[("this", runs[0][0])])
    print(
        f"limit {options.limit_gb} GB address space, timeout {options.timeout} s, "
        f"{options.reps} rounds"
    )
    print(
        f"{'checkout':<8} {'case':<24} {'wall s':>8} {'x base':>7} {'peak MiB':>9} "
        f"{'x base':>7}  exit"
    )
    for (label, name), rows in results.items():
        wall = statistics.median(r[0] for r in rows)
        peak = statistics.median(r[1] for r in rows)
        codes = sorted({str(r[2]) for r in rows})
        print(
            f"{label:<8} {name:<24} {wall:>8.2f} {wall / base_s:>7.2f} {peak:>9.0f} "
            f"{peak / base_mb:>7.2f}  {','.join(codes)}"
        )


if __name__ == "__main__":
    main()
