"""The user service: the shared factory plus this service's blueprints."""
from common.web import create_app as _create_app
from svc_user.api_v1 import sessions, users


def create_app():
    return _create_app("user", [users, sessions], description="Users and login sessions.")
