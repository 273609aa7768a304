"""Sales reports read straight from the shared tables, and the queue of report jobs.

Revenue is recognised when a transaction is paid: a sale counts in the window that holds its `paid_at`,
whatever its `created_at` (a large purchase may be confirmed by OTP minutes later). Only status `paid`
counts; `awaiting_otp`, `cancelled` and `expired` never do. The service reads `transactions`,
`transaction_lines`, `items` and `users` (owned by others) and writes only `report_jobs`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Iterator
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from common.db.models import ReportJob
from common.db.session import make_engine
from common.errors import Conflict, NotFound, Unprocessable
from common.ids import is_id
from common.settings import get_settings
from svc_report.chart import bar_chart

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
GROUP_BYS = ("day", "item", "user")
KINDS = ("sales",)


@dataclass(frozen=True)
class SalesQuery:
    """A validated window [start, end) in UTC, a grouping and the zone days are cut in."""

    start: datetime
    end: datetime
    group_by: str
    tz: str

    def as_params(self) -> dict:
        return {"from": _iso(self.start), "to": _iso(self.end), "group_by": self.group_by, "tz": self.tz}


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _invalid(
    fields: dict, message: str = "The report parameters are invalid.", code: str = "validation_error"
):
    return Unprocessable(message, code=code, details={"fields": fields})


def _zone(name: str | None) -> tzinfo:
    if name is None or name.upper() == "UTC":
        return timezone.utc
    # Only names from the zone database's list: never a path ZoneInfo would try to open.
    if name not in _iana_zones():
        raise _invalid({"tz": [f"Unknown time zone {name!r}: use an IANA name such as 'Asia/Jakarta'."]})
    return ZoneInfo(name)


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _instant(raw: str, zone: tzinfo) -> datetime:
    """An ISO 8601 date (midnight) or datetime; without an offset it is read in `zone`."""
    raw = raw.strip()
    if _DATE.match(raw):
        moment = datetime.combine(date.fromisoformat(raw), time(), zone)
    else:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
    return moment.astimezone(timezone.utc)


def parse_sales_query(start: str, end: str, group_by: str = "day", tz: str | None = None) -> SalesQuery:
    """Validate a sales report's parameters: 422 naming the fields when they break a rule."""
    if group_by not in GROUP_BYS:
        raise _invalid({"group_by": [f"Must be one of: {', '.join(GROUP_BYS)}."]})
    zone = _zone(tz)
    errors: dict = {}
    moments = {}
    for field, raw in (("from", start), ("to", end)):
        try:
            moments[field] = _instant(raw, zone)
        except (ValueError, OverflowError, TypeError, AttributeError):
            errors[field] = ["Not an ISO 8601 date (YYYY-MM-DD) or datetime (YYYY-MM-DDTHH:MM:SSZ)."]
    if errors:
        raise _invalid(errors)
    lo, hi = moments["from"], moments["to"]
    if lo >= hi:
        raise _invalid(
            {"to": ["Must be after 'from'."]}, "'from' must be before 'to'.", code="invalid_window"
        )
    limit = get_settings().report_max_window_days
    if hi - lo > timedelta(days=limit):
        raise _invalid(
            {"to": [f"The window may span at most {limit} days."]},
            f"The window is longer than {limit} days.",
            code="window_too_large",
        )
    return SalesQuery(lo, hi, group_by, "UTC" if zone is timezone.utc or not tz else tz)


# Key per group: day and user are functions of the transaction, item of the line. The window filter is
# the partial index ix_transactions_paid_at (status = 'paid', paid_at).
_KEYS = {
    "day": "(t.paid_at AT TIME ZONE :tz)::date",
    "user": "t.user_id",
    "item": "l.item_id",
}
_NAMES = {
    "day": ("", ""),
    "user": (", u.username", "LEFT JOIN users u ON u.id = agg.key"),
    "item": (", i.name, i.sku", "LEFT JOIN items i ON i.id = agg.key"),
}
# numeric, not bigint: a sum (or one line) past 2^63 stays exact instead of failing the report.
_AMOUNT = "l.quantity::numeric * l.unit_price"
_PAID_LINES = (
    "FROM transactions t JOIN transaction_lines l ON l.transaction_id = t.id "
    "WHERE t.status = 'paid' AND t.paid_at >= :start AND t.paid_at < :end"
)
_ORDER = {"day": "agg.key", "user": "agg.revenue DESC, agg.key", "item": "agg.revenue DESC, agg.key"}


def sales_sql(group_by: str) -> str:
    """The one statement behind a sales report: rows and totals from one snapshot."""
    key = _KEYS[group_by]
    names, join = _NAMES[group_by]
    # Lines are first summed per transaction, so a group's `transactions` is a plain count. A line is
    # already one per transaction and item, so items skip that step and only their totals count distinct.
    if group_by == "item":
        per_tx = f"SELECT t.id AS tid, {key} AS key, l.quantity, {_AMOUNT} AS revenue {_PAID_LINES}"
        total_transactions = "count(DISTINCT tid)"
    else:
        per_tx = (
            f"SELECT t.id AS tid, {key} AS key, sum(l.quantity) AS quantity, sum({_AMOUNT}) AS revenue "
            f"{_PAID_LINES} GROUP BY t.id"
        )
        total_transactions = "count(*)"
    return f"""
WITH per_tx AS (
    {per_tx}
), agg AS (
    SELECT false AS is_total, key, count(*) AS transactions, sum(quantity)::numeric AS quantity,
           sum(revenue) AS revenue
    FROM per_tx GROUP BY key
    UNION ALL
    SELECT true, NULL, {total_transactions}, coalesce(sum(quantity), 0)::numeric, coalesce(sum(revenue), 0)
    FROM per_tx
)
SELECT agg.is_total, agg.key, agg.transactions, agg.quantity, agg.revenue{names}
FROM agg {join}
ORDER BY agg.is_total, {_ORDER[group_by]}"""


_replica_engines: dict[tuple[int, str], Engine] = {}

# How far a standby's replay trails its primary, read just before the aggregate. Zero once everything
# received is replayed: an idle primary sends nothing, and the age of the last replayed commit would then
# grow without any lag. NULL on a server that is not a standby. now() is when this statement's
# transaction began, so a commit replayed while it runs would make the difference negative: never below 0.
_REPLICATION_LAG = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END"
)


@contextmanager
def aggregate_session(session: Session) -> Iterator[Session]:
    """Where aggregates run: the replica TOKO_REPORT_DATABASE_URL names, if any, else `session`."""
    url = get_settings().report_database_url
    if not url:
        yield session
        return
    key = (os.getpid(), url)  # per process: gunicorn forks, and connections must not cross a fork
    engine = _replica_engines.get(key)
    if engine is None:
        engine = _replica_engines.setdefault(key, make_engine(url, application_name="toko-report-aggregates"))
    replica = Session(engine)
    try:
        yield replica
    finally:
        replica.close()


def sales_report(session: Session, query: SalesQuery) -> dict:
    """The sales report as a JSON-ready document (the live endpoint and the worker both call this).

    One statement, so rows and totals come from one snapshot; on a replica they may trail the primary
    by its replication lag, which the document states (null when they ran on the primary).
    """
    with aggregate_session(session) as reads:
        lag = None if reads is session else reads.execute(_REPLICATION_LAG).scalar()
        result = reads.execute(
            text(sales_sql(query.group_by)), {"start": query.start, "end": query.end, "tz": query.tz}
        ).all()
    rows, totals = [], {"transactions": 0, "quantity": 0, "revenue": 0}
    day, item = query.group_by == "day", query.group_by == "item"
    for is_total, key, transactions, quantity, revenue, *names in result:
        figures = {"transactions": transactions, "quantity": int(quantity), "revenue": int(revenue)}
        if is_total:
            totals = figures
        elif day:
            rows.append({"key": key.isoformat(), **figures})
        elif item:
            rows.append({"key": key, **figures, "name": names[0], "sku": names[1]})
        else:
            rows.append({"key": key, **figures, "username": names[0]})
    if day:
        rows = _every_day(query, rows)
    return {
        "kind": "sales",
        **query.as_params(),
        "currency": get_settings().currency,
        "rows": rows,
        "totals": totals,
        "replication_lag_seconds": None if lag is None else round(float(lag), 3),
    }


def _every_day(query: SalesQuery, rows: list[dict]) -> list[dict]:
    """A row for each day of the window in its zone, zero where nothing sold: a chart shows the gaps."""
    zone = _zone(query.tz)
    sold = {row["key"]: row for row in rows}
    day, last = (
        query.start.astimezone(zone).date(),
        (query.end - timedelta(microseconds=1)).astimezone(zone).date(),
    )
    every = []
    while day <= last:
        key = day.isoformat()
        every.append(sold.get(key) or {"key": key, "transactions": 0, "quantity": 0, "revenue": 0})
        day += timedelta(days=1)
    return every


# --- report jobs ---------------------------------------------------------------------------------------


def enqueue(session: Session, requested_by: int, kind: str, params: dict) -> ReportJob:
    """Validate a report request now (bad input never reaches the queue) and queue it."""
    if kind not in KINDS:
        raise _invalid({"kind": [f"Must be one of: {', '.join(KINDS)}."]})
    query = parse_sales_query(params["from"], params["to"], params.get("group_by") or "day", params.get("tz"))
    job = ReportJob(kind=kind, params=query.as_params(), requested_by=requested_by)
    session.add(job)
    session.flush()
    session.refresh(job)
    return job


def list_jobs(session: Session, page: int, per_page: int) -> list[ReportJob]:
    """Jobs, newest first."""
    stmt = select(ReportJob).order_by(ReportJob.created_at.desc(), ReportJob.id.desc())
    return list(session.scalars(stmt.limit(per_page).offset((page - 1) * per_page)))


def get_job(session: Session, job_id: int) -> ReportJob:
    job = session.get(ReportJob, job_id) if is_id(job_id) else None
    if job is None:
        raise NotFound("No such report.", code="report_not_found")
    return job


def delete_job(session: Session, job_id: int) -> None:
    """Remove a job in any state; a worker computing it finds its row gone and drops the result."""
    if (
        not is_id(job_id)
        or session.execute(delete(ReportJob).where(ReportJob.id == job_id).returning(ReportJob.id)).first()
        is None
    ):
        raise NotFound("No such report.", code="report_not_found")


def finished_result(job: ReportJob) -> dict:
    """The result of a done job; 409 while it is queued, running or failed."""
    if job.status != "done" or job.result is None:
        raise Conflict(
            f"The report is {job.status}, not done.", code="report_not_ready", details={"status": job.status}
        )
    return job.result


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_BLANKS = "".join(map(chr, range(33)))


def _cell(value):
    # Spreadsheets run a cell that starts like a formula, and some skip leading blanks and control
    # characters first: names come from users, so defuse them.
    if isinstance(value, str) and (
        value.startswith(_FORMULA_START) or value.lstrip(_BLANKS).startswith(_FORMULA_START)
    ):
        return "'" + value
    return value


def report_csv(result: dict) -> str:
    """The rows as CSV with a header row."""
    extra = {"item": ["name", "sku"], "user": ["username"]}.get(result["group_by"], [])
    columns = ["key", *extra, "transactions", "quantity", "revenue"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in result["rows"]:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()


def _when(iso: str, tz: str) -> str:
    """A window edge for people, in the report's zone: the date alone at midnight."""
    moment = datetime.fromisoformat(iso).astimezone(_zone(tz))
    return moment.strftime("%Y-%m-%d" if moment.time() == time() else "%Y-%m-%d %H:%M:%S")


CHART_MAX_BARS = 30


def report_chart(result: dict) -> str:
    """Revenue per key as an SVG bar chart (items and buyers: the top ones; the CSV has them all)."""
    group_by, rows = result["group_by"], result["rows"]
    totals = result["totals"]
    subtitle = [
        f"{_when(result['from'], result['tz'])} to {_when(result['to'], result['tz'])} {result['tz']} "
        f"(end excluded), paid transactions",
        f"Total {totals['revenue']:,} {result['currency']} in {totals['transactions']:,} transactions",
    ]
    if group_by == "day":
        labels = [row["key"] for row in rows]
    else:
        name = "name" if group_by == "item" else "username"
        if len(rows) > CHART_MAX_BARS:
            # A bar for the rest would dwarf the top ones whenever the tail is long: name it instead.
            subtitle[1] += f"; the top {CHART_MAX_BARS} of {len(rows):,} {group_by}s by revenue"
            rows = rows[:CHART_MAX_BARS]
        labels = [row.get(name) or f"{group_by} {row['key']}" for row in rows]
    values = [row["revenue"] for row in rows]
    return bar_chart(
        title=f"Sales revenue by {group_by}",
        subtitle=subtitle,
        labels=labels,
        values=values,
        x_title={"day": "Day", "item": "Item", "user": "Buyer"}[group_by],
        y_title=f"Revenue ({result['currency']})",
    )
