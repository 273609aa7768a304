"""requirements.lock pins what setup.cfg pins (make install installs from it)."""
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_lock_file_holds_every_pin_of_setup_cfg_with_hashes():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    pins = cfg["options"]["install_requires"].split() + [
        line for extra in cfg["options.extras_require"].values() for line in extra.split()]
    lock = (ROOT / "requirements.lock").read_text()
    locked = {name.lower().replace("_", "-"): version
              for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    for pin in pins:
        name, version = pin.split("==")
        assert locked.get(name.lower().replace("_", "-")) == version, f"{pin} is not in requirements.lock: make lock"
    assert all(block.count("--hash=sha256:") for block in lock.split("\n\n") if "==" in block)
