"""The sales report: its one statement, where it runs, and the document it returns.

Revenue is recognised when a transaction is paid: a sale counts in the window that holds its `paid_at`,
whatever its `created_at` (a large purchase may be confirmed by OTP minutes later). Only status `paid`
counts; `awaiting_otp`, `cancelled` and `expired` never do. The report reads `transactions`,
`transaction_lines`, `items` and `users`, all owned by other services — or, with `source=events`, the
sales projection svc_report keeps from transaction events (svc_report/projection.py), which has the same
shape, so one statement defines the report on both.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator

from sqlalchemy import text
from sqlalchemy.orm import Session

from common.db.session import cached_engine
from common.events.consumer import LAG
from common.settings import get_settings
from svc_report.projection import CONSUMER
from svc_report.query import SalesQuery, zone

SOURCES = ("tables", "events")
# Where each source keeps transactions and their lines; the projection mirrors the columns the report reads.
_TABLES = {
    "tables": ("transactions", "transaction_lines"),
    "events": ("projected_sales", "projected_sale_lines"),
}

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
    "FROM {transactions} t JOIN {lines} l ON l.transaction_id = t.id "
    "WHERE t.status = 'paid' AND t.paid_at >= :start AND t.paid_at < :end"
)
_ORDER = {"day": "agg.key", "user": "agg.revenue DESC, agg.key", "item": "agg.revenue DESC, agg.key"}


def sales_sql(group_by: str, source: str = "tables") -> str:
    """The one statement behind a sales report: rows and totals from one snapshot."""
    key = _KEYS[group_by]
    names, join = _NAMES[group_by]
    transactions, lines = _TABLES[source]
    paid_lines = _PAID_LINES.format(transactions=transactions, lines=lines)
    # Lines are first summed per transaction, so a group's `transactions` is a plain count. A line is
    # already one per transaction and item, so items skip that step and only their totals count distinct.
    if group_by == "item":
        per_tx = f"SELECT t.id AS tid, {key} AS key, l.quantity, {_AMOUNT} AS revenue {paid_lines}"
        total_transactions = "count(DISTINCT tid)"
    else:
        per_tx = (
            f"SELECT t.id AS tid, {key} AS key, sum(l.quantity) AS quantity, sum({_AMOUNT}) AS revenue "
            f"{paid_lines} GROUP BY t.id"
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
    replica = Session(cached_engine(url, "toko-report-aggregates", own_pool=True))
    try:
        yield replica
    finally:
        replica.close()


def sales_report(session: Session, query: SalesQuery) -> dict:
    """The sales report from the shared tables as a JSON-ready document (the report jobs' too)."""
    return sales_answer(session, query, "tables")[0]


def sales_answer(session: Session, query: SalesQuery, source: str) -> tuple[dict, dict]:
    """The sales report from `source` and its `meta`: the source, and how far behind the newest event
    it may be (`lag_seconds`, 0 for the tables, which are the truth itself).

    One statement, so rows and totals come from one snapshot; on a replica they may trail the primary
    by its replication lag, which the document states (null when they ran on the primary). The
    projection's lag is read first: the figures are at least as fresh as it says.
    """
    with aggregate_session(session) as reads:
        lag = None if reads is session else reads.execute(_REPLICATION_LAG).scalar()
        behind = 0.0 if source == "tables" else float(reads.execute(LAG, {"name": CONSUMER}).scalar() or 0)
        result = reads.execute(
            text(sales_sql(query.group_by, source)), {"start": query.start, "end": query.end, "tz": query.tz}
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
    document = {
        "kind": "sales",
        **query.as_params(),
        "currency": get_settings().currency,
        "rows": rows,
        "totals": totals,
        "replication_lag_seconds": None if lag is None else round(float(lag), 3),
    }
    return document, {"source": source, "lag_seconds": round(behind, 3)}


def _every_day(query: SalesQuery, rows: list[dict]) -> list[dict]:
    """A row for each day of the window in its zone, zero where nothing sold: a chart shows the gaps."""
    where = zone(query.tz)
    sold = {row["key"]: row for row in rows}
    day, last = (
        query.start.astimezone(where).date(),
        (query.end - timedelta(microseconds=1)).astimezone(where).date(),
    )
    every = []
    while day <= last:
        key = day.isoformat()
        every.append(sold.get(key) or {"key": key, "transactions": 0, "quantity": 0, "revenue": 0})
        day += timedelta(days=1)
    return every
