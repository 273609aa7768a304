"""The otp service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from common.web.metrics import register_queue_metrics
from svc_otp import service
from svc_otp.api_v1 import otps


def create_app():
    app = _create_app("otp", [otps], description="One-time passwords: issue, deliver, verify.")
    register_queue_metrics(app, service.queue_depths)
    return app
