"""The local-stack scripts: they parse, `make` knows the documented targets, and
`down.sh` stops exactly the process groups recorded in .pids/ — and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import REPO

SCRIPTS = sorted((REPO / "scripts").glob("*.sh")) + [REPO / ".ci/run"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script: Path):
    subprocess.run(["bash", "-n", str(script)], check=True)
    if script.name != "stack_env.sh":  # sourced, not run
        assert os.access(script, os.X_OK), f"{script} is not executable"
        assert "set -euo pipefail" in script.read_text()


def test_make_knows_the_documented_targets():
    out = subprocess.run(["make", "-n", "setup", "up", "down", "test", "lint", "bench"], cwd=REPO,
                         capture_output=True, text=True, check=True).stdout
    assert "scripts/up.sh" in out and "scripts/down.sh" in out
    assert "-m pytest -p no:cacheprovider" in out and "ruff check ." in out
    # The README opens with exactly the two commands.
    first_block = (REPO / "README.md").read_text().split("```")[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["make up", "make test"]


def test_ci_runs_lint_and_the_readme_test_command():
    ci = (REPO / ".ci/run").read_text()
    assert ci.index("make lint") < ci.index("make test")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_down_stops_the_recorded_groups_and_spares_others(tmp_path):
    # A "component" leading its own session with a child, as up.sh starts them.
    component = subprocess.Popen(["bash", "-c", "sleep 300 & wait"], start_new_session=True)
    # A process that is not a session leader: a stale pid file naming it must not kill it.
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        time.sleep(0.3)
        child = int(subprocess.run(["pgrep", "-P", str(component.pid)], capture_output=True, text=True,
                                   check=True).stdout.split()[0])
        pids = tmp_path / "pids"
        pids.mkdir()
        (pids / "component.pid").write_text(f"{component.pid}\n")
        (pids / "stale.pid").write_text(f"{bystander.pid}\n")
        out = subprocess.run([str(REPO / "scripts/down.sh")], env={**os.environ, "PIDS_DIR": str(pids), "GRACE": "5"},
                             capture_output=True, text=True, timeout=60, check=True).stdout
        component.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the component's child outlived down.sh"
        assert bystander.poll() is None, "down.sh killed a process it did not start"
        assert f"TERM component (pid {component.pid})" in out
        assert list(pids.iterdir()) == []
    finally:
        for proc in (component, bystander):
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


def test_env_example_works_as_the_local_stack_env(tmp_path):
    """`cp .env.example .env.local` must not break make up: stack_env.sh sources it with bash."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts/stack_env.sh").write_text((REPO / "scripts/stack_env.sh").read_text())
    (root / ".env.local").write_text((REPO / ".env.example").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "CHROMA", "SEARCH"))}
    out = subprocess.run(["bash", "-euc", "source scripts/stack_env.sh; env"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert values["AIRFLOW_HOME"] == f"{root}/.airflow"
    assert values["AIRFLOW__CORE__DAGS_FOLDER"] == f"{root}/dags"
    assert values["CHROMA_PORT"] == "8001" and values["CHROMA_HOST"] == "127.0.0.1"
    assert values["PYTHONPATH"].split(":")[:2] == [f"{root}/plugins", str(root)]
