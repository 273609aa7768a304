"""What an operator meets on the real stack: the services' log files and their queue metrics."""
from __future__ import annotations

import json
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_operations import child_pids, program_pid


def log_lines(stack, program: str) -> list[str]:
    return [line for line in stack.log(program).splitlines() if line.strip()]


def wait_for_line(stack, program: str, text: str, after: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not any(text in line for line in log_lines(stack, program)[after:]):
        assert time.monotonic() < deadline, f"no {text!r} in {program}'s log: {log_lines(stack, program)[after:]}"
        time.sleep(0.2)


def test_reload_and_restart_write_json_lines_and_no_logging_error(stack):
    program = "svc_otp"
    before = len(log_lines(stack, program))
    master = program_pid(stack, program)
    old_workers = child_pids(master)
    # HUP: the master boots new workers and the old ones exit.
    assert stack.ctl("signal", "HUP", program).returncode == 0
    deadline = time.monotonic() + 30
    while child_pids(master) & old_workers:
        assert time.monotonic() < deadline, "the old workers did not exit"
        time.sleep(0.1)
    # restart: the master and every worker stop, then start again.
    assert stack.ctl("restart", program).returncode == 0
    stack.wait_healthy(["otp"])
    wait_for_line(stack, program, "Booting worker", after=before)

    lines = log_lines(stack, program)[before:]
    assert not [line for line in lines if "Logging error" in line or line.startswith("Traceback")], lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line in {program}'s log: {line!r}") from None
    gunicorn = [r for r in records if r["logger"] == "gunicorn.error"]
    messages = " | ".join(r["msg"] for r in gunicorn)
    for said in ("Handling signal: hup", "Worker exiting", "Handling signal: term", "Booting worker"):
        assert said in messages, messages
    assert {r["service"] for r in records} == {"otp"}


def test_each_worker_queue_is_on_its_owning_service_metrics_as_its_role_reads_it(stack):
    # The stack runs every service as its own role (TOKO_DB_ROLES=on) and in multiprocess mode.
    owners = {"otp": {("otp_messages", "pending")}, "transaction": {("transactions", "awaiting_otp")},
              "report": {("report_jobs", "queued"), ("report_jobs", "running")}}
    for service, queues in owners.items():
        body = requests.get(stack.url(service, "/metrics"), timeout=10).text
        found = {(s.labels["queue"], s.labels["state"]): s.value
                 for family in text_string_to_metric_families(body) for s in family.samples
                 if s.name == "toko_queue_depth" and s.labels["service"] == service}
        assert set(found) == queues, (service, body[-2000:])
        assert all(value >= 0 for value in found.values())
    assert "toko_queue_depth" not in requests.get(stack.url("item", "/metrics"), timeout=10).text
