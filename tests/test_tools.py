"""A test group skipped for a missing tool is named at the end of the run, and with CI=true it fails."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GROUP = '''
import pytest
from tests.tools import missing

pytestmark = pytest.mark.skipif(True, reason=missing("frobnicate", "frobnicator", "the frobs are not tested"))


def test_frob():
    pass
'''


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_group.py").write_text(GROUP)
    environ = {k: v for k, v in os.environ.items() if k != "CI"} | env
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.tools", "-c", os.devnull, "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)


def test_a_missing_tool_is_a_named_skip_outside_ci(tmp_path):
    run = _run(tmp_path)
    assert run.returncode == 0, run.stdout
    tail = run.stdout.splitlines()[-6:]
    assert any("skipped groups" in line for line in run.stdout.splitlines())
    assert any("test_group.py: missing tool: frobnicate (apt-get install frobnicator)" in line
               for line in run.stdout.splitlines()), run.stdout
    assert tail[-1].strip().startswith("1 skipped")


def test_a_missing_tool_fails_the_run_in_ci(tmp_path):
    run = _run(tmp_path, CI="true")
    assert run.returncode != 0, run.stdout
    assert "CI=true: every test group must run" in run.stdout
