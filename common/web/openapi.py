"""The last touches on each service's OpenAPI document, in one place.

flask-smorest builds the document from the views; this adds what it cannot know: readable operationIds,
the error codes each error response can carry (from common/error_codes.py), plain-text summaries, the
version(s) the service serves, and no schema nobody refers to.
"""

from __future__ import annotations

import copy
import re

from common.error_codes import codes_for, table

_VERSION = re.compile(r"^/v(\d+)/")
_ERROR_REF = "#/components/schemas/Error"


def operation_id(function_name: str, rule: str, method: str, methods: list[str]) -> str:
    """`list_items` on /v1/items -> listItems, on /v2/... -> listItemsV2; a second method: its own name."""
    head, *rest = function_name.split("_")
    name = head + "".join(word.capitalize() for word in rest)
    version = _VERSION.match(rule)
    if version and version.group(1) != "1":
        name += f"V{version.group(1)}"
    if method.upper() != methods[0].upper():
        name += f"Via{method.capitalize()}"
    return name


def finish(document: dict, service: str) -> dict:
    versions = sorted({int(m.group(1)) for path in document.get("paths", {}) if (m := _VERSION.match(path))})
    if versions:
        document["info"]["version"] = str(versions[-1])
        if len(versions) > 1:
            document["info"]["description"] = (
                document["info"].get("description", "").rstrip() + "\n\n"
                f"Serves API versions {', '.join(f'v{v}' for v in versions)}."
            )
    shared = document.get("components", {}).get("responses", {})
    for path in document.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if "summary" in operation:
                operation["summary"] = operation["summary"].replace("`", "")
            for status, response in operation["responses"].items():
                if status.isdigit() and int(status) >= 400:
                    if "$ref" in response:  # a shared response (smorest's 422): this operation gets its own
                        response = operation["responses"][status] = copy.deepcopy(
                            shared[response["$ref"].rsplit("/", 1)[1]]
                        )
                    _document_codes(response, service, int(status))
    schemas = document.get("components", {}).get("schemas", {})
    if "ErrorBody" in schemas:
        schemas["ErrorBody"]["properties"]["code"]["enum"] = codes_for(service)
        schemas["ErrorBody"]["properties"]["code"]["description"] = (
            "What went wrong, for programs; the message is for people.\n\n" + table(service)
        )
    _drop_unused_schemas(document)
    return document


def _document_codes(response: dict, service: str, status: int) -> None:
    codes = codes_for(service, status)
    content = response.get("content", {}).get("application/json")
    if not codes or not content or content.get("schema", {}).get("$ref") != _ERROR_REF:
        return
    content["schema"] = {
        "allOf": [
            {"$ref": _ERROR_REF},
            {
                "type": "object",
                "properties": {
                    "error": {"type": "object", "properties": {"code": {"type": "string", "enum": codes}}}
                },
            },
        ]
    }
    response["description"] = (
        response.get("description", "").rstrip(".")
        + ". error.code: "
        + ", ".join(f"`{code}`" for code in codes)
    )


def _refs(node, found: set[str], kind: str = "schemas") -> None:
    """Collect the names of every `#/components/<kind>/` reference under `node`."""
    prefix = f"#/components/{kind}/"
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            _refs(value, found, kind)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found, kind)


def _drop_unused_schemas(document: dict) -> None:
    responses = document.get("components", {}).get("responses", {})
    used_responses: set[str] = set()
    _refs(document.get("paths", {}), used_responses, "responses")
    for name in list(responses):
        if name not in used_responses:
            del responses[name]
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    _refs({key: value for key, value in document.items() if key != "components"}, used)
    _refs({key: value for key, value in document.get("components", {}).items() if key != "schemas"}, used)
    pending = list(used)
    while pending:  # schemas that used schemas refer to
        name = pending.pop()
        inner: set[str] = set()
        _refs(schemas.get(name, {}), inner)
        pending.extend(inner - used)
        used |= inner
    for name in list(schemas):
        if name not in used:
            del schemas[name]
