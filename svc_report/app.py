"""The report service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from common.web.metrics import register_queue_metrics
from svc_report import jobs
from svc_report.api_v1 import reports


def create_app():
    app = _create_app(
        "report",
        [reports],
        description=(
            "Sales reports read straight from the shared tables (admin only), live or as queued jobs "
            "computed by svc_report_worker. Reads transactions, transaction_lines, items and users; writes "
            "only report_jobs."
        ),
    )
    register_queue_metrics(app, jobs.queue_depths)
    return app
