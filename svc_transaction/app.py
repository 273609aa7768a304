"""The transaction service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from common.web.metrics import register_queue_metrics
from svc_transaction import service
from svc_transaction.api_v1 import blp as v1


def create_app():
    app = _create_app(
        "transaction",
        [v1],
        description=(
            "Purchases. Taking stock and recording the sale happen in one PostgreSQL transaction: a purchase "
            "never oversells, an Idempotency-Key never charges twice, and a large total waits for an OTP."
        ),
    )
    register_queue_metrics(app, service.queue_depths)
    return app
