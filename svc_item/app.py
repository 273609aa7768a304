"""The item service: the shared factory plus this service's blueprints."""

from common.web import create_app as _create_app
from svc_item import api_v1, api_v2

DESCRIPTION = """The toko item catalogue: categories and items.

Two versions live side by side. **v1** (`/v1/items`, `/v1/categories`) is the full read/write pattern:
lists paged with `?page=&per_page=`, money as integer minor units in `price`, the category as
`category_id`. **v2** (`/v2/items`, `/v2/items/{id}`, `/v2/categories/{id}/items`) is read only and
differs in three ways: keyset pagination with an opaque, signed cursor (`?cursor=&limit=`,
`meta.next_cursor`) that stays exact at any depth and under every sort; filters `min_price`,
`max_price`, `in_stock` and `sort` (`id`, `price`, `-price`, `name`, ties broken by id); items embed
their `category` and show money as `{"amount", "currency"}`. A v1 client never sees any of this.
"""


# The catalogue's reads, anyone's to see: the edge may answer them from its cache (toko/gateway.py).
CATALOGUE = ("/v1/items", "/v2/items", "/v1/categories", "/v2/categories")


def create_app():
    return _create_app(
        "item",
        [api_v1.items, api_v1.categories, api_v2.items],
        description=DESCRIPTION,
        public_reads=CATALOGUE,
    )
