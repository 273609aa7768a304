"""scripts/need: the Debian packages `make run` and `make test` need, installed or asked for in one line."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEED = str(ROOT / "scripts/need")


def test_nothing_missing_says_nothing():
    run = subprocess.run([NEED, "venv"], capture_output=True, text=True, timeout=30)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to act as another user")
def test_a_user_who_cannot_install_is_told_the_one_command():
    # A Python without venv support, as a user who is not root: the script cannot install python3-venv.
    # The script comes on standard input: the checkout's folders need not be open to that user.
    run = subprocess.run(["runuser", "-u", "nobody", "--", "env", "PYTHON=/bin/false", "bash", "-s", "venv"],
                         input=Path(NEED).read_text(), capture_output=True, text=True, timeout=30, cwd="/")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "toko needs the Debian package(s) python3-venv (python3 -m venv makes .venv): "
        "run  sudo apt-get install -y python3-venv"]


def test_an_unknown_tool_is_refused():
    run = subprocess.run([NEED, "frobnicate"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 2 and "unknown tool 'frobnicate'" in run.stderr
