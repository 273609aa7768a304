"""The lock files pin what setup.cfg pins: requirements.lock what runs, requirements-dev.lock the rest too."""
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _pins(section: str, *keys: str) -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return [line for key in keys for line in cfg[section][key].split()]


def _locked(name: str) -> tuple[str, dict[str, str]]:
    lock = (ROOT / name).read_text()
    versions = {name.lower().replace("_", "-"): version
                for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\$", lock, re.M)}
    return lock, versions


def _assert_pinned(pins: list[str], versions: dict[str, str], lock_name: str) -> None:
    for pin in pins:
        name, version = pin.split("==")
        assert versions.get(name.lower().replace("_", "-")) == version, f"{pin} is not in {lock_name}: make lock"


def test_the_runtime_lock_holds_every_runtime_pin_with_hashes_and_no_tool():
    lock, versions = _locked("requirements.lock")
    _assert_pinned(_pins("options", "install_requires"), versions, "requirements.lock")
    assert all(block.count("--hash=sha256:") for block in lock.split("\n\n") if "==" in block)
    tools = [pin.split("==")[0].lower() for pin in _pins("options.extras_require", "test", "dev")]
    assert not [tool for tool in tools if tool in versions], "make run would install a test or development tool"


def test_the_dev_lock_adds_the_tools_and_keeps_every_runtime_version():
    lock, versions = _locked("requirements-dev.lock")
    _assert_pinned(_pins("options", "install_requires") + _pins("options.extras_require", "test", "dev"),
                   versions, "requirements-dev.lock")
    assert all(block.count("--hash=sha256:") for block in lock.split("\n\n") if "==" in block)
    _, runtime = _locked("requirements.lock")
    differ = {name: (version, versions.get(name)) for name, version in runtime.items() if versions.get(name) != version}
    assert not differ, f"the two locks disagree (make lock): {differ}"
