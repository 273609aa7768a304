"""The report service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from svc_report.api_v1 import reports


def create_app():
    return _create_app(
        "report",
        [reports],
        description=(
            "Sales reports read straight from the shared tables (admin only), live or as queued jobs "
            "computed by svc_report_worker. Reads transactions, transaction_lines, items and users; writes "
            "only report_jobs."
        ),
    )
