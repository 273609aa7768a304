"""Checks many test modules make: the contract's error envelope, on in-process and HTTP responses alike."""
from __future__ import annotations


def error(response, status: int, code: str | None = None) -> dict:
    """The contract's envelope with this status (and code): only `error`, with a message, details and a
    request id; returns the error object."""
    text = response.get_data(as_text=True) if hasattr(response, "get_data") else response.text
    assert response.status_code == status, text
    body = response.get_json() if hasattr(response, "get_json") else response.json()
    assert set(body) == {"error"}, body
    found = body["error"]
    assert found["message"] and isinstance(found["details"], dict), body
    if code is not None:
        assert found["code"] == code, body
    assert response.headers.get("X-Request-ID"), "every answer carries X-Request-ID"
    return found


def error_details(response, status: int, code: str | None = None) -> dict:
    """As `error`, returning the envelope's details."""
    return error(response, status, code)["details"]
