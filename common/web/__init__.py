"""The web layer every service shares."""

from common.web.api import Api, Blueprint
from common.web.app import create_app
from common.web.auth import current_principal, require_principal
from common.web.db import commit, connection, db, read_connection, read_session

__all__ = [
    "Api",
    "Blueprint",
    "commit",
    "connection",
    "create_app",
    "current_principal",
    "require_principal",
    "db",
    "read_connection",
    "read_session",
]
