"""v1: /v1/items and /v1/categories, every verb; reads public, writes admin only."""

from __future__ import annotations

from flask import url_for

from common.web import Blueprint, commit, db, read_connection, read_session
from common.web.schemas import PageArgs, envelope
from svc_item import service
from svc_item.schemas import (
    CategoryPatchSchema,
    CategorySchema,
    CategoryWriteSchema,
    ItemListArgs,
    ItemPatchSchema,
    ItemSchema,
    ItemWriteSchema,
)

# A non-numeric id does not match the route (404); the service answers 404 for ids beyond bigint.
ITEM = "/v1/items/<int:item_id>"
CATEGORY = "/v1/categories/<int:category_id>"
_CREATED = {"Location": {"description": "The new resource's URL.", "schema": {"type": "string"}}}

items = Blueprint(
    "items_v1",
    __name__,
    description=(
        "Items, v1: money as integer minor units in `price`, the category as `category_id`, lists paged "
        "with ?page=&per_page=. Reads are public; writes need an admin session."
    ),
)
categories = Blueprint(
    "categories_v1",
    __name__,
    description=(
        "Categories, v1. Reads are public; writes need an admin session. Deleting a category leaves its "
        "items in the catalogue without a category."
    ),
)


# -- items -----------------------------------------------------------------------------------------


@items.route("/v1/items", methods=["GET"])
@items.arguments(ItemListArgs, location="query")
@items.response(200, envelope(ItemSchema, many=True))
@items.errors(422)
def list_items(args):
    """Live items by id; `q` matches part of the name, case-insensitively."""
    with read_session() as session:
        return {"data": service.list_items(session, **args)}


@items.route("/v1/items", methods=["POST"])
@items.auth(admin=True)
@items.arguments(ItemWriteSchema)
@items.response(201, envelope(ItemSchema), headers=_CREATED)
@items.errors(409, 422)
def create_item(body):
    """Add an item (sku unique among live items)."""
    session = db()
    item = service.create_item(session, body)
    commit()
    return {"data": item}, 201, {"Location": url_for(".get_item", item_id=item.id)}


@items.route(ITEM, methods=["GET"])
@items.response(200, envelope(ItemSchema))
@items.errors(404)
def get_item(item_id):
    """One live item."""
    with read_connection() as connection:
        return {"data": service.get_item(connection, item_id)}


@items.route(ITEM, methods=["PUT", "POST"])
@items.auth(admin=True)
@items.arguments(ItemWriteSchema)
@items.response(200, envelope(ItemSchema))
@items.errors(404, 409, 422)
def replace_item(body, item_id):
    """Replace an item: every field is set, omitted optional ones to their defaults."""
    session = db()
    item = service.update_item(session, item_id, body)
    commit()
    return {"data": item}


@items.route(ITEM, methods=["PATCH"])
@items.auth(admin=True)
@items.arguments(ItemPatchSchema)
@items.response(200, envelope(ItemSchema))
@items.errors(404, 409, 422)
def patch_item(body, item_id):
    """Change the named fields of an item."""
    session = db()
    item = service.update_item(session, item_id, body)
    commit()
    return {"data": item}


@items.route(ITEM, methods=["DELETE"])
@items.auth(admin=True)
@items.response(204)
@items.errors(404)
def delete_item(item_id):
    """Take an item out of the catalogue; past transactions keep their lines naming it."""
    session = db()
    service.delete_item(session, item_id)
    commit()


# -- categories ------------------------------------------------------------------------------------


@categories.route("/v1/categories", methods=["GET"])
@categories.arguments(PageArgs, location="query")
@categories.response(200, envelope(CategorySchema, many=True))
@categories.errors(422)
def list_categories(args):
    """Categories by id."""
    with read_session() as session:
        return {"data": service.list_categories(session, **args)}


@categories.route("/v1/categories", methods=["POST"])
@categories.auth(admin=True)
@categories.arguments(CategoryWriteSchema)
@categories.response(201, envelope(CategorySchema), headers=_CREATED)
@categories.errors(409, 422)
def create_category(body):
    """Add a category (names are unique)."""
    session = db()
    category = service.create_category(session, body)
    commit()
    return {"data": category}, 201, {"Location": url_for(".get_category", category_id=category.id)}


@categories.route(CATEGORY, methods=["GET"])
@categories.response(200, envelope(CategorySchema))
@categories.errors(404)
def get_category(category_id):
    """One category."""
    with read_session() as session:
        return {"data": service.get_category(session, category_id)}


@categories.route(CATEGORY, methods=["PUT", "POST"])
@categories.auth(admin=True)
@categories.arguments(CategoryWriteSchema)
@categories.response(200, envelope(CategorySchema))
@categories.errors(404, 409, 422)
def replace_category(body, category_id):
    """Replace a category: every field is set, an omitted description to empty."""
    session = db()
    category = service.update_category(session, category_id, body)
    commit()
    return {"data": category}


@categories.route(CATEGORY, methods=["PATCH"])
@categories.auth(admin=True)
@categories.arguments(CategoryPatchSchema)
@categories.response(200, envelope(CategorySchema))
@categories.errors(404, 409, 422)
def patch_category(body, category_id):
    """Change the named fields of a category."""
    session = db()
    category = service.update_category(session, category_id, body)
    commit()
    return {"data": category}


@categories.route(CATEGORY, methods=["DELETE"])
@categories.auth(admin=True)
@categories.response(204)
@categories.errors(404)
def delete_category(category_id):
    """Remove a category; its items stay, uncategorised."""
    session = db()
    service.delete_category(session, category_id)
    commit()
