"""The otp service: the shared factory plus this service's blueprints."""
from common.web import create_app as _create_app


def create_app():
    return _create_app("otp", [])
