"""Who is calling: what the web layer's authentication hands to the services (which know no HTTP)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of a request: its session and its user."""

    session_id: int
    user_id: int
    username: str
    role: str
    verified: bool
    created_at: datetime
    expires_at: datetime
    idle_expires_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
