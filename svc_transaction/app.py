"""The transaction service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from svc_transaction.api_v1 import blp as v1


def create_app():
    return _create_app(
        "transaction",
        [v1],
        description=(
            "Purchases. Taking stock and recording the sale happen in one PostgreSQL transaction: a purchase "
            "never oversells, an Idempotency-Key never charges twice, and a large total waits for an OTP."
        ),
    )
