"""Categories and items (owned by svc_item; svc_transaction takes stock)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from common.db.base import Base, IdMixin, TimestampMixin

LIVE = text("deleted_at IS NULL")


class Category(IdMixin, TimestampMixin, Base):
    __tablename__ = "categories"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, server_default="")


class Item(IdMixin, TimestampMixin, Base):
    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price"),
        CheckConstraint("stock >= 0", name="stock"),
        # A removed item keeps its row (past transaction lines point at it) and frees its sku.
        Index("uq_items_sku_live", "sku", unique=True, postgresql_where=LIVE),
        # Keyset pagination: one index per sort order, ties broken by id.
        Index("ix_items_live_price_id", "price", "id", postgresql_where=LIVE),
        Index("ix_items_live_name_id", "name", "id", postgresql_where=LIVE),
        Index("ix_items_live_category_id", "category_id", "id", postgresql_where=LIVE),
        Index("ix_items_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )

    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    price: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"))
    deleted_at: Mapped[datetime | None]

    category: Mapped[Category | None] = relationship(lazy="raise")
