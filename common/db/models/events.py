"""The transactional outbox and its consumers' bookkeeping (each service writes its own events)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Identity,
    Index,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from common.db.base import Base


class Xid8(UserDefinedType):
    """PostgreSQL's 64-bit transaction id (pg_current_xact_id()); the driver hands it over as text."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:
        return "xid8"


# Reflection (alembic check) then reads the column back as the same type instead of an unknown one.
ischema_names.setdefault("xid8", Xid8)


class OutboxEvent(Base):
    """One event, written in the same transaction as the change it describes.

    Readers go by (tx_id, seq), never by seq alone: seq is taken when a row is inserted, but rows become
    visible when their transactions commit, in another order. Below the oldest transaction still open
    (pg_snapshot_xmin), no row can appear any more, so a reader that stops there misses none.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (Index("uq_outbox_events_position", "tx_id", "seq", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, server_default=text("gen_random_uuid()"))
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    tx_id: Mapped[str] = mapped_column(Xid8(), server_default=text("pg_current_xact_id()"))
    type: Mapped[str] = mapped_column(String(64))
    aggregate_type: Mapped[str] = mapped_column(String(32))
    aggregate_id: Mapped[str] = mapped_column(Text)
    # Not indexed: every index costs each purchase, and readers go by position.
    occurred_at: Mapped[datetime] = mapped_column(server_default=text("now()"))
    version: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    data: Mapped[dict] = mapped_column(JSONB)


class EventConsumer(Base):
    """A consumer's position: the (tx_id, seq) of the last event it has read."""

    __tablename__ = "event_consumers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    position_tx_id: Mapped[str] = mapped_column(Xid8(), server_default=text("'0'::xid8"))
    position_seq: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=text("now()"))


class AppliedEvent(Base):
    """An event a consumer has applied, recorded with its effect: a redelivery finds it and does nothing."""

    __tablename__ = "applied_events"
    __table_args__ = (PrimaryKeyConstraint("consumer", "event_id"),)

    consumer: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    applied_at: Mapped[datetime] = mapped_column(server_default=text("now()"), index=True)


class EventDeadLetter(Base):
    """An event a consumer could not apply, set aside with the reason; `toko events replay` tries again."""

    __tablename__ = "event_dead_letters"
    __table_args__ = (PrimaryKeyConstraint("consumer", "event_id"),)

    consumer: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(server_default=text("now()"))
