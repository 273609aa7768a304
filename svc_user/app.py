"""The user service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from svc_user.api_v1 import sessions, users
from svc_user.passwords import dummy_hash


def create_app():
    # The dummy hash an unknown username is checked against exists before the first login needs it, so
    # that login takes no longer than any other.
    dummy_hash()
    return _create_app("user", [users, sessions], description="Users and login sessions.")
