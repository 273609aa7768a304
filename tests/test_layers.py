"""The import rule: a service imports `common/` and itself only; `common/` imports no service and not the
operators' `toko/` package. Read from the source (every import statement, at any depth), not at run time."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.name for p in ROOT.glob("svc_*") if p.is_dir())
LAYERS = ["common", *SERVICES]


def imported(path: Path) -> set[str]:
    """Top-level package of every module the file imports, including `importlib.import_module("svc_...")`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args:
            arg = node.args[0]
            text = arg.value if isinstance(arg, ast.Constant) else \
                "".join(v.value for v in getattr(arg, "values", []) if isinstance(v, ast.Constant))
            if isinstance(text, str) and text:
                found.add(text.split(".")[0] + ("*" if isinstance(arg, ast.JoinedStr) else ""))
    return found


def forbidden_for(layer: str) -> set[str]:
    others = {s for s in SERVICES if s != layer}
    return others | {"toko", "svc_*"} if layer != "common" else set(SERVICES) | {"toko", "svc_*"}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_what_it_may(layer):
    wrong = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for module in imported(path) & forbidden_for(layer):
            wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_the_rule_sees_every_kind_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import svc_item.service\nfrom svc_user import service\n"
                      "def f(name):\n    import importlib\n    return importlib.import_module(f'svc_{name}.worker')\n")
    assert imported(sample) >= {"svc_item", "svc_user", "svc_*"}


WEB_MODULES = {"app.py", "schemas.py", "__init__.py"}  # and api_v*.py: the views
WEB_PACKAGES = ("flask", "flask_smorest", "webargs", "werkzeug", "common.web")


def modules_imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_s_rules_and_workers_know_no_web_framework(service):
    """service.py, worker.py and their helpers take plain values: no Flask, no HTTP status, no common.web."""
    wrong = []
    for path in sorted((ROOT / service).glob("*.py")):
        if path.name in WEB_MODULES or path.name.startswith("api_v"):
            continue
        for module in modules_imported(path):
            if _is_web(module):
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_common_outside_the_web_layer_loads_no_web_framework():
    wrong = []
    for path in sorted((ROOT / "common").rglob("*.py")):
        if "web" in path.relative_to(ROOT / "common").parts:
            continue
        for module in modules_imported(path):
            if _is_web(module):
                wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not wrong, "\n".join(wrong)


def _is_web(module: str) -> bool:
    # flask_swagger_ui (common/swagger.py) only ships Swagger UI's files; importing common.web from
    # outside it would also load the metrics before gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR.
    return any(module == p or module.startswith(p + ".") for p in WEB_PACKAGES)


def test_gunicorn_s_settings_read_the_socket_path_without_the_nginx_renderer():
    """Every gunicorn master imports gunicorn.conf.py: it takes the edge's facts from common/, not toko/."""
    assert "toko" not in imported(ROOT / "gunicorn.conf.py")


@pytest.mark.parametrize("path", sorted((ROOT / "bench").glob("*.py")), ids=lambda p: p.name)
def test_the_benchmarks_start_stacks_through_toko_not_the_tests(path):
    assert "tests" not in imported(path)
