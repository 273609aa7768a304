"""The parameters of a sales report: a window in UTC, a grouping and the zone days are cut in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from common.errors import Unprocessable
from common.settings import get_settings

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
GROUP_BYS = ("day", "item", "user")


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


def invalid(
    fields: dict, message: str = "The report parameters are invalid.", code: str = "validation_error"
) -> Unprocessable:
    """The 422 for report parameters that break a rule, naming the fields."""
    return Unprocessable(message, code=code, details={"fields": fields})


def zone(name: str | None) -> tzinfo:
    """The time zone a report names (UTC when none)."""
    if name is None or name.upper() == "UTC":
        return timezone.utc
    # Only names from the zone database's list: never a path ZoneInfo would try to open.
    if name not in _iana_zones():
        raise invalid({"tz": [f"Unknown time zone {name!r}: use an IANA name such as 'Asia/Jakarta'."]})
    return ZoneInfo(name)


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _instant(raw: str, where: tzinfo) -> datetime:
    """An ISO 8601 date (midnight) or datetime; without an offset it is read in `where`."""
    raw = raw.strip()
    if _DATE.match(raw):
        moment = datetime.combine(date.fromisoformat(raw), time(), where)
    else:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=where)
    return moment.astimezone(timezone.utc)


def parse_sales_query(start: str, end: str, group_by: str = "day", tz: str | None = None) -> SalesQuery:
    """Validate a sales report's parameters: 422 naming the fields when they break a rule."""
    if group_by not in GROUP_BYS:
        raise invalid({"group_by": [f"Must be one of: {', '.join(GROUP_BYS)}."]})
    where = zone(tz)
    errors: dict = {}
    moments = {}
    for field, raw in (("from", start), ("to", end)):
        try:
            moments[field] = _instant(raw, where)
        except (ValueError, OverflowError, TypeError, AttributeError):
            errors[field] = ["Not an ISO 8601 date (YYYY-MM-DD) or datetime (YYYY-MM-DDTHH:MM:SSZ)."]
    if errors:
        raise invalid(errors)
    lo, hi = moments["from"], moments["to"]
    if lo >= hi:
        raise invalid({"to": ["Must be after 'from'."]}, "'from' must be before 'to'.", code="invalid_window")
    limit = get_settings().report_max_window_days
    if hi - lo > timedelta(days=limit):
        raise invalid(
            {"to": [f"The window may span at most {limit} days."]},
            f"The window is longer than {limit} days.",
            code="window_too_large",
        )
    return SalesQuery(lo, hi, group_by, "UTC" if where is timezone.utc or not tz else tz)
