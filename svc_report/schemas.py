"""Request and response schemas of the report service."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from common.db.models.reports import REPORT_STATES
from common.web.schemas import StrictSchema, UtcDateTime
from svc_report.jobs import KINDS
from svc_report.query import GROUP_BYS
from svc_report.sales import SOURCES

_FROM_DOC = (
    "Start of the window, inclusive: an ISO 8601 date (`2024-05-01`, midnight) or datetime "
    "(`2024-05-01T08:00:00Z`). Without an offset it is read in `tz` (UTC by default)."
)
_TO_DOC = "End of the window, exclusive; same formats as `from`. Must be after `from`."
_GROUP_DOC = (
    "`day` (key `YYYY-MM-DD`, in `tz`; a row for every day of the window), "
    "`item` (key = item id, with `name` and `sku`), "
    "`user` (key = user id, with `username`)."
)
_TZ_DOC = (
    "IANA time zone (e.g. `Asia/Jakarta`) for day buckets and for dates or offset-less datetimes "
    "in `from`/`to`. Default `UTC`."
)


class SalesArgs(StrictSchema):
    """?from=&to=&group_by=&tz= of the live sales report."""

    from_ = fields.String(
        required=True,
        data_key="from",
        validate=validate.Length(min=1, max=64),
        metadata={"description": _FROM_DOC, "example": "2024-05-01"},
    )
    to = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"description": _TO_DOC, "example": "2024-06-01"},
    )
    group_by = fields.String(
        load_default="day", validate=validate.OneOf(GROUP_BYS), metadata={"description": _GROUP_DOC}
    )
    tz = fields.String(
        load_default=None, validate=validate.Length(min=1, max=64), metadata={"description": _TZ_DOC}
    )


class LiveSalesArgs(SalesArgs):
    """The live report's parameters, plus where its figures come from."""

    source = fields.String(
        load_default="tables",
        validate=validate.OneOf(SOURCES),
        metadata={
            "description": "`tables` (the shared tables, the truth at this instant) or `events` (the sales "
            "projection svc_report keeps from transaction events: the same rows and totals once it has "
            "applied them, `meta.lag_seconds` says how far behind it may be)."
        },
    )


class ReportCreate(SalesArgs):
    """POST /v1/reports: the same parameters as the live report, plus its kind."""

    kind = fields.String(required=True, validate=validate.OneOf(KINDS), metadata={"example": "sales"})


class SalesTotals(Schema):
    transactions = fields.Integer(required=True, metadata={"description": "Distinct paid transactions."})
    quantity = fields.Integer(required=True, metadata={"description": "Units sold."})
    revenue = fields.Integer(
        required=True, metadata={"description": "Sum of quantity × unit_price, in minor units."}
    )


class SalesRow(SalesTotals):
    key = fields.Raw(required=True, metadata={"description": "`YYYY-MM-DD` (day) or the item / user id."})
    name = fields.String(metadata={"description": "group_by=item: the item's name."})
    sku = fields.String(metadata={"description": "group_by=item: the item's sku."})
    username = fields.String(metadata={"description": "group_by=user: the buyer's username."})


class SalesReport(Schema):
    """Paid sales in [from, to), counted when paid (by `paid_at`), from the shared tables in one snapshot."""

    kind = fields.String(required=True)
    from_ = fields.String(
        required=True, data_key="from", attribute="from", metadata={"description": "The window's start, UTC."}
    )
    to = fields.String(required=True, metadata={"description": "The window's end (exclusive), UTC."})
    group_by = fields.String(required=True)
    tz = fields.String(required=True)
    currency = fields.String(required=True)
    rows = fields.List(fields.Nested(SalesRow), required=True)
    totals = fields.Nested(SalesTotals, required=True)
    replication_lag_seconds = fields.Float(
        allow_none=True,
        metadata={
            "description": "How far the replica that computed the figures trailed the primary, "
            "in seconds (0 when "
            "it had replayed everything it had received); null when they come from the primary."
        },
    )


class SalesMeta(Schema):
    source = fields.String(required=True, validate=validate.OneOf(SOURCES))
    lag_seconds = fields.Float(
        required=True,
        metadata={
            "description": "How far behind the newest event the figures may be, in seconds: the age of the "
            "oldest event the projection has not applied yet (0 when it has applied them all, and always 0 "
            "for `tables`)."
        },
    )


class SalesAnswer(Schema):
    """The live report and where it came from."""

    data = fields.Nested(SalesReport, required=True)
    meta = fields.Nested(SalesMeta, required=True)


class ReportParams(Schema):
    from_ = fields.String(required=True, data_key="from", attribute="from")
    to = fields.String(required=True)
    group_by = fields.String(required=True)
    tz = fields.String(required=True)


class ReportJobSchema(Schema):
    """A queued report: `result` once done, `error` once failed."""

    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(REPORT_STATES))
    params = fields.Nested(ReportParams, required=True)
    requested_by = fields.Integer(allow_none=True)
    attempts = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    started_at = UtcDateTime(allow_none=True)
    finished_at = UtcDateTime(allow_none=True)
    error = fields.String(allow_none=True)
    result = fields.Nested(SalesReport, allow_none=True)
    links = fields.Function(
        lambda job: _links(job),
        metadata={"type": "object", "description": "The job itself, and its CSV and chart once done."},
    )


def _links(job) -> dict:
    base = f"/v1/reports/{job.id}"
    links = {"self": base}
    if job.status == "done":
        links.update(csv=f"{base}.csv", chart=f"{base}/chart.svg")
    return links


class ReportJobSummary(ReportJobSchema):
    """A job in the list: everything but the result."""

    class Meta:
        exclude = ("result",)
