"""The report service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from common.web.metrics import EventsCollector, register_queue_metrics
from svc_report import jobs
from svc_report.api_v1 import reports
from svc_report.projection import CONSUMER


def create_app():
    app = _create_app(
        "report",
        [reports],
        description=(
            "Sales reports read straight from the shared tables (admin only), live or as queued jobs "
            "computed by svc_report_worker. Reads transactions, transaction_lines, items and users; writes "
            "only report_jobs and the sales projection it keeps from transaction events."
        ),
    )
    register_queue_metrics(app, jobs.queue_depths)
    # The projector is a program of its own, without an HTTP port: its backlog and lag are scraped here.
    app.extensions["toko"]["scraped_metrics"].append(EventsCollector((CONSUMER,)))
    return app
