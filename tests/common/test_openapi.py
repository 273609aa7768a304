"""Every service's OpenAPI document, checked as a client generator would read it."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

from common import errors
from common.error_codes import ANY, CODES
from common.settings import SERVICES
from common.web.errors import HTTP_CODES

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module", params=SERVICES)
def spec(request):
    app = importlib.import_module(f"svc_{request.param}.app").create_app()
    return request.param, app.test_client().get("/openapi.json").get_json()


def operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def test_every_operation_has_a_readable_unique_operation_id(spec):
    _, document = spec
    ids = [(name, operation.get("operationId")) for name, operation in operations(document)]
    assert all(re.fullmatch(r"[a-z][A-Za-z0-9]+", op_id or "") for _, op_id in ids), ids
    assert len({op_id for _, op_id in ids}) == len(ids)


def test_summaries_are_plain_text(spec):
    _, document = spec
    for name, operation in operations(document):
        assert operation.get("summary") and "`" not in operation["summary"], name


def test_every_error_response_lists_the_codes_it_can_carry(spec):
    service, document = spec
    for name, operation in operations(document):
        for status, response in operation["responses"].items():
            if not status.isdigit() or int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}, (name, status)
            listed = schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"]
            assert listed, (name, status)
            for code in listed:
                assert CODES[code].status == int(status) and {service, ANY} & set(CODES[code].services)
                assert f"`{code}`" in response["description"]


def test_the_error_schema_enumerates_the_service_codes_with_a_table(spec):
    service, document = spec
    code = document["components"]["schemas"]["ErrorBody"]["properties"]["code"]
    own = {c for c, entry in CODES.items() if service in entry.services}
    assert own <= set(code["enum"]) and "validation_error" in code["enum"]
    assert all(f"| `{c}` |" in code["description"] for c in code["enum"])


def _referenced(node, found):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"].rsplit("/", 1)[1])
        for value in node.values():
            _referenced(value, found)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, found)
    return found


def test_no_schema_is_left_unused(spec):
    _, document = spec
    schemas = document["components"]["schemas"]
    assert "PaginationMetadata" not in schemas
    used = _referenced({k: v for k, v in document.items() if k != "components"}, set())
    used |= _referenced(document["components"].get("responses", {}), set())
    used |= _referenced(schemas, set())
    assert set(schemas) <= used, set(schemas) - used


def test_the_version_is_the_newest_the_service_serves(spec):
    service, document = spec
    versions = {int(m.group(1)) for path in document["paths"] if (m := re.match(r"/v(\d+)/", path))}
    assert document["info"]["version"] == str(max(versions))
    if service == "item":
        assert document["info"]["version"] == "2" and "v1, v2" in document["info"]["description"]


def test_the_document_is_built_once_and_served_as_it_is():
    client = importlib.import_module("svc_item.app").create_app().test_client()
    reads = [client.get("/openapi.json").get_data() for _ in range(50)]
    assert len(set(reads)) == 1, "every read serves the same bytes"
    assert reads[0].count(b"Serves API versions v1, v2.") == 1


# -- the table against the source ------------------------------------------------------------------

STATUS_OF_CLASS = {name: cls.status for name, cls in vars(errors).items()
                   if isinstance(cls, type) and issubclass(cls, errors.ApiError)}


def raised_codes():
    """(code, status, service or ANY, where) for every code literal the source answers with."""
    found = [(code, status, ANY, "common/web/errors.py HTTP_CODES") for status, code in HTTP_CODES.items()]
    for path in [*ROOT.glob("common/**/*.py"), *ROOT.glob("svc_*/**/*.py")]:
        owner = path.relative_to(ROOT).parts[0]
        service = owner.removeprefix("svc_") if owner.startswith("svc_") else ANY
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            # A table of (ErrorClass, "code", ...) the service raises from.
            if isinstance(node, ast.Tuple) and len(node.elts) >= 2 and isinstance(node.elts[0], ast.Name) \
                    and node.elts[0].id in STATUS_OF_CLASS and isinstance(node.elts[1], ast.Constant):
                found.append((node.elts[1].value, STATUS_OF_CLASS[node.elts[0].id], service,
                              f"{path.relative_to(ROOT)}:{node.lineno}"))
            if isinstance(node, ast.Call):
                keywords = {k.arg: k.value for k in node.keywords}
                code = keywords.get("code")
                if isinstance(code, ast.Constant) and isinstance(code.value, str):
                    callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                    status = keywords.get("status")
                    status = status.value if isinstance(status, ast.Constant) else STATUS_OF_CLASS.get(callee)
                    if callee == "_invalid":
                        status = 422
                    found.append((code.value, status, service, f"{path.relative_to(ROOT)}:{node.lineno}"))
                if getattr(node.func, "id", None) == "error_response" and len(node.args) >= 2 \
                        and all(isinstance(a, ast.Constant) for a in node.args[:2]):
                    found.append((node.args[1].value, node.args[0].value, service,
                                  f"{path.relative_to(ROOT)}:{node.lineno}"))
    found += [(cls.code, cls.status, ANY, f"common/errors.py {name}") for name, cls in vars(errors).items()
              if isinstance(cls, type) and issubclass(cls, errors.ApiError)]
    return found


def test_every_code_the_source_raises_is_in_the_table_with_its_status_and_service():
    for code, status, service, where in raised_codes():
        assert code in CODES, f"{where}: add {code!r} to common/error_codes.py"
        assert status is None or CODES[code].status == status, f"{where}: {code} is {status}, table says otherwise"
        # A shared helper's code (a cursor's) may belong to the services that use the helper.
        assert service == ANY or {service, ANY} & set(CODES[code].services), f"{where}: {code} on {service}"


def test_every_code_in_the_table_is_still_raised():
    raised = {code for code, *_ in raised_codes()}
    assert set(CODES) <= raised, set(CODES) - raised


def test_whole_value_patterns_are_written_as_openapi_reads_them():
    """`^...$` for ECMA-262 readers of the document; the service itself checks the whole value."""
    from svc_user.app import create_app

    spec = create_app().test_client().get("/openapi.json").get_json()
    username = spec["components"]["schemas"]["UserCreate"]["properties"]["username"]
    assert username["pattern"] == "^[A-Za-z0-9_.-]{3,64}$"
