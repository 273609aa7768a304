"""The shared model library: the one description of toko's schema."""

from common.db.base import Base
from common.db.session import dispose_engines, get_engine, session_factory, session_scope

__all__ = ["Base", "get_engine", "dispose_engines", "session_factory", "session_scope"]
