"""Queued report jobs (owned by svc_report)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.db.base import Base, IdMixin

REPORT_STATES = ("queued", "running", "done", "failed")


class ReportJob(IdMixin, Base):
    __tablename__ = "report_jobs"
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        CheckConstraint("kind IN ('sales')", name="kind"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(
            "ix_report_jobs_claimable", "created_at", postgresql_where=text("status IN ('queued', 'running')")
        ),
    )

    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), server_default="queued")
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # A running job whose lease has passed belongs to a dead worker and is taken again.
    lease_expires_at: Mapped[datetime | None]
    result: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
