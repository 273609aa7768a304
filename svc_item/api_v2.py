"""v2: keyset-paged browsing with filters and sorts; items embed their category, money is an object."""

from __future__ import annotations

from common.web import Blueprint, read_session
from common.web.schemas import envelope
from svc_item import service
from svc_item.schemas import ItemBrowseAllArgs, ItemBrowseArgs, ItemV2Schema

ITEM = "/v2/items/<int:item_id>"
CATEGORY_ITEMS = "/v2/categories/<int:category_id>/items"

items = Blueprint(
    "items_v2",
    __name__,
    description=(
        "Items, v2 (read only; writes stay on v1). Differences from v1: lists use keyset pagination "
        "(?cursor=&limit=, answer `meta.next_cursor`, null on the last page) instead of ?page=; a cursor is "
        "opaque, signed and bound to the filters and sort it came from (a garbled, forged or reused one is "
        "400 invalid_cursor); filters q, category_id, min_price, max_price, in_stock; sort id | price | "
        "-price | name with ties broken by id; an item embeds `category` {id, name} (null when it has "
        'none) instead of `category_id`, and shows `price` as {"amount", "currency"} in minor units.'
    ),
)

_PAGE = envelope(ItemV2Schema, many=True, cursor=True)


@items.route("/v2/items", methods=["GET"])
@items.arguments(ItemBrowseAllArgs, location="query")
@items.response(200, _PAGE)
@items.errors(400, 422)
def browse_items(args):
    """A page of live items after the cursor, filtered and sorted."""
    with read_session() as session:
        page = service.browse_items(session, **args)
    return {"data": page.items, "meta": {"limit": args["limit"], "next_cursor": page.next_cursor}}


@items.route(ITEM, methods=["GET"])
@items.response(200, envelope(ItemV2Schema))
@items.errors(404)
def get_item(item_id):
    """One live item with its category."""
    with read_session() as session:
        return {"data": service.get_item_with_category(session, item_id)}


@items.route(CATEGORY_ITEMS, methods=["GET"])
@items.arguments(ItemBrowseArgs, location="query")
@items.response(200, _PAGE)
@items.errors(400, 404, 422)
def browse_category_items(args, category_id):
    """A page of one category's live items, filtered and sorted like /v2/items."""
    with read_session() as session:
        page = service.browse_category_items(session, category_id, **args)
    return {"data": page.items, "meta": {"limit": args["limit"], "next_cursor": page.next_cursor}}
