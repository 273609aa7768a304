"""A finished report's result as files for people: CSV rows and an SVG bar chart."""

from __future__ import annotations

import csv
import io
from datetime import datetime, time

from svc_report.chart import bar_chart
from svc_report.query import zone

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
    moment = datetime.fromisoformat(iso).astimezone(zone(tz))
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
