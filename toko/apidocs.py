"""docs/api.md, written from the five services' OpenAPI documents (`toko api-docs`; a test checks it)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from common.error_codes import ANY, CODES
from common.settings import DEFAULT_PORTS, SERVICES

ROOT = Path(__file__).resolve().parents[1]
PATH = ROOT / "docs" / "api.md"
METHODS = ("get", "post", "put", "patch", "delete")

INTRO = """# toko API reference

Generated from each service's OpenAPI document by `toko api-docs` (`make docs`); a test fails when it
is out of date. Each running service serves the same document at `GET /openapi.json` and renders it at
`GET /docs`. The README's first session shows the calls in order.

## Every service

- JSON in, JSON out, UTF-8. Success is `{"data": …}`; v1 lists are `{"data": [ … ]}` paged with
  `?page=&per_page=`; v2 lists add `"meta": {"limit", "next_cursor"}` and take `?cursor=&limit=` (a
  page holds 20 by default and at most 100, as `TOKO_DEFAULT_PAGE_SIZE` and `TOKO_MAX_PAGE_SIZE` set
  them; a cursor is opaque: pass `next_cursor` back as it came; null on the last page).
- Every status ≥ 400 is `{"error": {"code": "snake_case", "message": "a sentence", "details": {…}}}`;
  the codes are listed per operation below and all together at the end. 422 names the fields in
  `details.fields`; 429 and 503 carry `Retry-After`.
- Authentication: `POST /v1/sessions` on the user service returns a token; send it to every service as
  `Authorization: Bearer <token>` (or the `toko_session` cookie). "session" below means an operation
  needs one; "admin" that the session's user must be an admin.
- Every response carries `X-Request-ID` (yours, when you send one). Times are ISO 8601 UTC with `Z`;
  money is an integer count of the currency's smallest unit (IDR: rupiah).
- Every service also answers `GET /healthz`, `GET /readyz`, `GET /metrics`, `GET /openapi.json` and
  `GET /docs`.
"""


def documents() -> dict[str, dict]:
    """Each service's OpenAPI document, as /openapi.json serves it."""
    os.environ.setdefault("TOKO_LOG_LEVEL", "WARNING")
    found = {}
    for service in SERVICES:
        app = importlib.import_module(f"svc_{service}.app").create_app()
        found[service] = app.extensions["toko"]["api"].document()
    return found


def _type(schema: dict) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "allOf" in schema:
        return " & ".join(_type(part) for part in schema["allOf"] if "$ref" in part) or "object"
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    kind = schema.get("type", "any")
    if "enum" in schema:
        kind += " (" + " \\| ".join(f"`{v}`" for v in schema["enum"]) + ")"
    elif schema.get("format"):
        kind += f" ({schema['format']})"
    return kind


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def _operation(method: str, path: str, op: dict) -> list[str]:
    security = op.get("security")
    needs = ""
    if security:
        needs = (
            " — admin"
            if "403" in op["responses"] and "Not an admin" in op["responses"]["403"].get("description", "")
            else " — session"
        )
    lines = [
        f"### `{method.upper()} {path}`{needs}",
        "",
        _cell(op.get("summary")) + f" (`{op['operationId']}`)",
    ]
    if op.get("description"):
        lines += ["", op["description"].strip()]
    params = op.get("parameters", [])
    if params:
        lines += ["", "| parameter | in | type | required | |", "|---|---|---|---|---|"]
        for p in params:
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_type(p.get('schema', {}))} | "
                f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description'))} |"
            )
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if body:
        lines += ["", f"Body: `{_type(body)}`."]
    lines += ["", "| status | answer |", "|---|---|"]
    for status, response in sorted(op["responses"].items()):
        if status == "default":
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        shape = f"`{_type(schema)}` " if schema and status < "400" else ""
        lines.append(f"| {status} | {shape}{_cell(response.get('description'))} |")
    return lines + [""]


def _schemas(document: dict) -> list[str]:
    lines = []
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name in ("Error", "ErrorBody") or name.endswith("Envelope"):
            continue
        required = set(schema.get("required", []))
        lines += [f"#### {name}", "", "| field | type | |", "|---|---|---|"]
        for field, spec in schema.get("properties", {}).items():
            flags = [] if field in required else ["optional"]
            if spec.get("readOnly"):
                flags.append("read only")
            if spec.get("nullable"):
                flags.append("may be null")
            note = "; ".join(filter(None, [", ".join(flags), _cell(spec.get("description"))]))
            lines.append(f"| `{field}` | {_type(spec)} | {note} |")
        lines.append("")
    return lines


def render(docs: dict[str, dict]) -> str:
    out = [INTRO]
    for service, document in docs.items():
        info = document["info"]
        out += [
            f"## {service} (`svc_{service}`, port {DEFAULT_PORTS[service]}, `TOKO_{service.upper()}_PORT`)",
            "",
            f"{info.get('description', '').strip()}",
            "",
            f"Document version {info['version']}.",
            "",
        ]
        for path, item in document["paths"].items():
            if path in ("/healthz", "/readyz"):
                continue
            for method in METHODS:
                if method in item:
                    out += _operation(method, path, item[method])
        out += [f"### {service}: schemas", ""] + _schemas(document)
    out += ["## Error codes", "", "| code | status | services | meaning |", "|---|---|---|---|"]
    for code, entry in sorted(CODES.items(), key=lambda kv: (kv[1].status, kv[0])):
        where = "every" if ANY in entry.services else ", ".join(entry.services)
        out.append(f"| `{code}` | {entry.status} | {where} | {_cell(entry.meaning)} |")
    return "\n".join(out).rstrip() + "\n"
