"""Catalogue rules: plain functions taking a Session; callers commit."""

from __future__ import annotations

from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import Select, bindparam, delete, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, contains_eager

from common.db.models import Category, Item
from common.db.session import driver_sql, run
from common.errors import BadRequest, Conflict, NotFound, Unprocessable
from common.events import record
from common.events.outbox import utc
from common.ids import is_id
from common.paging import CursorCodec, keyset_after, offset_page

LIVE = Item.deleted_at.is_(None)

# What a violated constraint means to the client: (error class, code, field, message).
_CONSTRAINTS = {
    "uq_items_sku_live": (
        Conflict,
        "already_exists",
        "sku",
        "An item with this sku is already in the catalogue.",
    ),
    "uq_categories_name": (Conflict, "already_exists", "name", "A category with this name already exists."),
    "fk_items_category_id_categories": (
        Unprocessable,
        "validation_error",
        "category_id",
        "Unknown category.",
    ),
    "ck_items_price": (Unprocessable, "validation_error", "price", "Must be greater than or equal to 0."),
    "ck_items_stock": (Unprocessable, "validation_error", "stock", "Must be greater than or equal to 0."),
}


@contextmanager
def _writing(session: Session) -> Iterator[None]:
    """Run a write in a savepoint and turn a violated constraint into the contract's error.

    The database settles uniqueness and references (no check-then-write race); a failed write leaves
    the caller's session usable.
    """
    try:
        with session.begin_nested():
            yield
    except IntegrityError as error:
        name = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
        if name not in _CONSTRAINTS:
            raise
        cls, code, field, message = _CONSTRAINTS[name]
        if cls is Conflict:
            raise Conflict(message, code=code, details={"field": field}) from None
        raise Unprocessable(code=code, details={"fields": {field: [message]}}) from None


def _check_id(value: int, what: str) -> None:
    """An id no row can have is simply not found (the database would refuse it as out of range)."""
    if not is_id(value):
        raise NotFound(f"No such {what}.")


def _contains(column, text: str):
    """Case-insensitive substring match, LIKE's wildcards taken literally (the trigram index serves it)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.ilike(f"%{escaped}%", escape="\\")


# -- categories ------------------------------------------------------------------------------------


def get_category(session: Session, category_id: int) -> Category:
    _check_id(category_id, "category")
    category = session.execute(select(Category).where(Category.id == category_id)).scalar_one_or_none()
    if category is None:
        raise NotFound("No such category.")
    return category


def list_categories(session: Session, *, page: int, per_page: int) -> list[Category]:
    stmt = offset_page(select(Category).order_by(Category.id), page=page, per_page=per_page)
    return list(session.execute(stmt).scalars())


def _insert(session: Session, row):
    """Add a new row; the database settles its constraints (see _writing)."""
    with _writing(session):
        session.add(row)
        session.flush()
    return row


def create_category(session: Session, data: dict) -> Category:
    return _insert(session, Category(**data))


def update_category(session: Session, category_id: int, changes: dict) -> Category:
    """Set the given fields (all of them for a replace, the named ones for a patch)."""
    _check_id(category_id, "category")
    if not changes:
        return get_category(session, category_id)
    with _writing(session):
        category = session.execute(
            update(Category)
            .where(Category.id == category_id)
            .values(**changes)
            .returning(Category)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
    if category is None:
        raise NotFound("No such category.")
    return category


def delete_category(session: Session, category_id: int) -> None:
    """Remove a category; its items stay in the catalogue, uncategorised (the foreign key sets NULL)."""
    _check_id(category_id, "category")
    removed = session.execute(
        delete(Category).where(Category.id == category_id).returning(Category.id)
    ).scalar()
    if removed is None:
        raise NotFound("No such category.")


# -- items -----------------------------------------------------------------------------------------

# Built once: the hottest read of the catalogue is a single primary-key lookup of plain columns.
_ITEMS = Item.__table__
_ITEM_COLUMNS = [c for c in _ITEMS.columns if c.key != "deleted_at"]
_ITEM_KEYS = tuple(c.key for c in _ITEM_COLUMNS)
_GET_ITEM = driver_sql(
    select(*_ITEM_COLUMNS).where(_ITEMS.c.id == bindparam("item_id"), _ITEMS.c.deleted_at.is_(None))
)


def get_item(connection: Connection, item_id: int) -> dict:
    """A live item's columns (id, sku, name, ..., updated_at) as a dict: one primary-key lookup."""
    _check_id(item_id, "item")
    with closing(run(connection, _GET_ITEM, {"item_id": item_id})) as cursor:
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such item.")
    return dict(zip(_ITEM_KEYS, row, strict=True))


def list_items(
    session: Session, *, page: int, per_page: int, q: str | None = None, category_id: int | None = None
) -> list[Item]:
    stmt = select(Item).where(LIVE).order_by(Item.id)
    if q:
        stmt = stmt.where(_contains(Item.name, q))
    if category_id is not None:
        stmt = stmt.where(Item.category_id == category_id)
    return list(session.execute(offset_page(stmt, page=page, per_page=per_page)).scalars())


def shown(item: Item) -> dict:
    """The item as v1 shows it, the data of its events."""
    return {
        key: utc(value) if key in ("created_at", "updated_at") else value
        for key, value in ((key, getattr(item, key)) for key in _ITEM_KEYS)
    }


def create_item(session: Session, data: dict) -> Item:
    item = _insert(session, Item(**data))
    record(session, "item.created", ("item", item.id), shown(item))
    return item


def update_item(session: Session, item_id: int, changes: dict) -> Item:
    """Set the given fields of a live item (all of them for a replace, the named ones for a patch)."""
    _check_id(item_id, "item")
    if not changes:
        item = session.execute(select(Item).where(Item.id == item_id, LIVE)).scalar_one_or_none()
        if item is None:
            raise NotFound("No such item.")
        return item
    with _writing(session):
        item = session.execute(
            update(Item)
            .where(Item.id == item_id, LIVE)
            .values(**changes)
            .returning(Item)
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
    if item is None:
        raise NotFound("No such item.")
    record(session, "item.changed", ("item", item.id), shown(item))
    return item


def delete_item(session: Session, item_id: int) -> None:
    """Take an item out of the catalogue: the row stays for the transaction lines that name it."""
    _check_id(item_id, "item")
    removed = session.execute(
        update(Item)
        .where(Item.id == item_id, LIVE)
        .values(deleted_at=func.now())
        .returning(Item.id, Item.sku)
        .execution_options(synchronize_session=False)
    ).first()
    if removed is None:
        raise NotFound("No such item.")
    record(session, "item.deleted", ("item", removed.id), {"id": removed.id, "sku": removed.sku})


# -- v2 browsing -----------------------------------------------------------------------------------

# Each sort is a composite key ending in the primary key, so it is total and a cursor is one exact
# position; each has a matching partial index (ix_items_live_price_id, ix_items_live_name_id, the pk).
_SORTS: dict[str, tuple[tuple, bool, tuple[type, ...]]] = {
    "id": ((Item.id,), False, (int,)),
    "price": ((Item.price, Item.id), False, (int, int)),
    "-price": ((Item.price, Item.id), True, (int, int)),
    "name": ((Item.name, Item.id), False, (str, int)),
}


@dataclass
class Page:
    items: list[Item]
    next_cursor: str | None


def get_item_with_category(session: Session, item_id: int) -> Item:
    """A live item with its category, in one statement."""
    _check_id(item_id, "item")
    row = session.execute(_with_category(select(Item)).where(Item.id == item_id, LIVE)).scalar_one_or_none()
    if row is None:
        raise NotFound("No such item.")
    return row


def _with_category(stmt: Select) -> Select:
    """Embed each item's category through the same statement: no query per item."""
    return stmt.outerjoin(Item.category).options(contains_eager(Item.category))


_CURSOR_PURPOSE = "items-v2"
_FILTERS = ("q", "category_id", "min_price", "max_price", "in_stock")


def _cursor_query(scope: str, sort: str, filters: dict) -> dict:
    """What a cursor is bound to: all that shapes the ordered set, so it cannot be replayed elsewhere."""
    return {"scope": scope, "sort": sort, **{name: filters.get(name) for name in _FILTERS}}


def cursor_after(position: list, *, sort: str = "id", scope: str = "items", **filters) -> str:
    """The cursor of the page that starts right after `position`, an item's sort key (e.g. [price, id])."""
    return CursorCodec(purpose=_CURSOR_PURPOSE).encode(position, _cursor_query(scope, sort, filters))


def browse_items(
    session: Session,
    *,
    limit: int,
    cursor: str | None = None,
    sort: str = "id",
    q: str | None = None,
    category_id: int | None = None,
    min_price: int | None = None,
    max_price: int | None = None,
    in_stock: bool | None = None,
    scope: str = "items",
) -> Page:
    """One keyset page of live items: a single statement whatever the page size or depth."""
    columns, descending, types = _SORTS[sort]
    filters = {
        "q": q,
        "category_id": category_id,
        "min_price": min_price,
        "max_price": max_price,
        "in_stock": in_stock,
    }
    stmt = _with_category(select(Item)).where(LIVE)
    if q:
        stmt = stmt.where(_contains(Item.name, q))
    if category_id is not None:
        stmt = stmt.where(Item.category_id == category_id)
    if min_price is not None:
        stmt = stmt.where(Item.price >= min_price)
    if max_price is not None:
        stmt = stmt.where(Item.price <= max_price)
    if in_stock is not None:
        stmt = stmt.where(Item.stock > 0 if in_stock else Item.stock == 0)
    if cursor is not None:
        position = CursorCodec(purpose=_CURSOR_PURPOSE).decode(cursor, _cursor_query(scope, sort, filters))
        if len(position) != len(types) or not all(
            type(value) is kind for value, kind in zip(position, types, strict=True)
        ):
            raise BadRequest("The cursor is invalid or belongs to another query.", code="invalid_cursor")
        stmt = stmt.where(keyset_after(columns, position, descending))
    order = [c.desc() for c in columns] if descending else list(columns)
    rows = list(session.execute(stmt.order_by(*order).limit(limit + 1)).scalars().unique())
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursor_after(
            [getattr(rows[-1], c.key) for c in columns], sort=sort, scope=scope, **filters
        )
    return Page(rows, next_cursor)


def browse_category_items(session: Session, category_id: int, **args) -> Page:
    """A keyset page of one category's live items; 404 for an unknown category."""
    _check_id(category_id, "category")
    page = browse_items(session, category_id=category_id, scope=f"category:{category_id}", **args)
    if not page.items:
        # A non-empty page already proves the category exists: only an empty one pays for the check.
        get_category(session, category_id)
    return page
