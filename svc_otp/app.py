"""The otp service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from svc_otp.api_v1 import otps


def create_app():
    return _create_app("otp", [otps], description="One-time passwords: issue, deliver, verify.")
