"""The demo's GraphQL upstream: a small product catalog (Strawberry), served next to the REST demo.

``create_catalog_app()`` serves ``/graphql``: products with prices and reviews, a filtered product
list, a mutation that adds a review, and an inventory query that wants an OAuth2 token from the REST
demo's ``/oauth/token``. It shows what the gateway does with a GraphQL upstream's answers:

- product 3's ``shipsInDays`` always fails: partial data, the rest of the product still arrives;
- a review with stars outside 1..5 is refused with errors and no data (code BAD_USER_INPUT);
- errors carry ``extensions.code``, which ``circuit_breaker.graphql_error_codes`` can match.

Reads and reviews need no credentials. A request whose Authorization header is not a valid demo
token (forged or expired) is answered 401, as a real API answers a stale token. Each app instance
has its own fresh data.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import Enum

import strawberry
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.asgi import GraphQL

from aggregator.demo.tokens import verify

__all__ = ["INVENTORY_SCOPE", "catalog_schema", "create_catalog_app"]

INVENTORY_SCOPE = "inventory:read"
# The product whose shipping estimate always fails, so that partial results are easy to see.
_NO_SHIPPING_ESTIMATE = "3"


@strawberry.enum(description="ISO 4217 currency code")
class Currency(Enum):
    EUR = "EUR"
    USD = "USD"


@strawberry.type(description="An amount of money")
class Money:
    amount: float
    currency: Currency


@strawberry.type(description="A customer's review of a product")
class Review:
    id: strawberry.ID
    product_id: strawberry.ID
    stars: int
    text: str | None
    created_at: str = strawberry.field(description="ISO 8601 time the review was written")


@strawberry.type(description="Something the demo shop sells")
class Product:
    id: strawberry.ID
    name: str
    category: str
    price: Money
    review_list: strawberry.Private[list[Review]]

    @strawberry.field
    def reviews(self, first: int | None = None) -> list[Review]:
        return self.review_list[:first] if first is not None else list(self.review_list)

    @strawberry.field
    def rating(self) -> float | None:
        if not self.review_list:
            return None
        return round(sum(r.stars for r in self.review_list) / len(self.review_list), 1)

    @strawberry.field
    def ships_in_days(self) -> int | None:
        if self.id == _NO_SHIPPING_ESTIMATE:
            raise GraphQLError(
                f"the shipping estimator is unavailable for product {self.id}",
                extensions={"code": "UNAVAILABLE"},
            )
        return 1 + int(self.id) % 3


@strawberry.type(description="One page of products")
class ProductPage:
    total_count: int
    nodes: list[Product]


@strawberry.type(description="Stock of a product in the warehouse")
class InventoryItem:
    product_id: strawberry.ID
    quantity: int
    warehouse: str


_PRODUCTS: tuple[tuple[str, str, float, Currency], ...] = (
    ("Analytical Engine poster", "posters", 19.5, Currency.EUR),
    ("Punched-card notebook", "stationery", 7.9, Currency.EUR),
    ("Enigma rotor kit", "kits", 129.0, Currency.EUR),
    ("COBOL field manual", "books", 24.0, Currency.USD),
    ("First-bug mug", "mugs", 12.5, Currency.USD),
)
_REVIEWS: tuple[tuple[str, int, str], ...] = (
    ("1", 5, "Hangs above my loom."),
    ("1", 4, "Lovely print, a little large."),
    ("3", 5, "Three rotors and a plugboard. Perfect."),
    ("5", 3, "The moth is not included."),
)
_STOCK = {"1": 40, "2": 250, "3": 3, "4": 12, "5": 0}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _input_error(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_USER_INPUT"})


def _fresh_products() -> dict[str, Product]:
    products = {
        str(n): Product(
            id=strawberry.ID(str(n)),
            name=name,
            category=category,
            price=Money(amount=amount, currency=currency),
            review_list=[],
        )
        for n, (name, category, amount, currency) in enumerate(_PRODUCTS, start=1)
    }
    for n, (product_id, stars, text) in enumerate(_REVIEWS, start=1):
        review = Review(
            id=strawberry.ID(str(n)),
            product_id=strawberry.ID(product_id),
            stars=stars,
            text=text,
            created_at="2024-05-01T12:00:00Z",
        )
        products[product_id].review_list.append(review)
    return products


def _bearer_token(headers: Headers) -> str | None:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" else None


def catalog_schema() -> strawberry.Schema:
    """The catalog's schema over fresh data; ``str()`` of it is the SDL a ``schema:`` file would hold."""
    products = _fresh_products()
    review_count = len(_REVIEWS)

    @strawberry.type
    class Query:
        @strawberry.field
        def product(self, id: strawberry.ID) -> Product | None:
            return products.get(str(id))

        @strawberry.field
        def products(
            self, category: str | None = None, max_price: float | None = None, first: int = 10
        ) -> ProductPage:
            found = sorted(
                (
                    p
                    for p in products.values()
                    if (category is None or p.category == category)
                    and (max_price is None or p.price.amount <= max_price)
                ),
                key=lambda p: p.price.amount,
            )
            return ProductPage(total_count=len(found), nodes=found[: max(first, 0)])

        @strawberry.field
        def inventory(self, info: strawberry.Info, product_id: strawberry.ID) -> InventoryItem | None:
            token = _bearer_token(info.context["request"].headers)
            grant = verify(token, time.time()) if token else None
            if grant is None or INVENTORY_SCOPE not in grant.scopes:
                raise GraphQLError(
                    f"the inventory needs a bearer token with scope {INVENTORY_SCOPE}",
                    extensions={"code": "FORBIDDEN"},
                )
            if str(product_id) not in products:
                return None
            product = products[str(product_id)]
            warehouse = "Manchester" if product.price.currency is Currency.EUR else "Arlington"
            return InventoryItem(product_id=product_id, quantity=_STOCK[product.id], warehouse=warehouse)

    @strawberry.type
    class Mutation:
        @strawberry.mutation
        def add_review(self, product_id: strawberry.ID, stars: int, text: str | None = None) -> Review:
            nonlocal review_count
            product = products.get(str(product_id))
            if product is None:
                raise _input_error(f"no product {product_id}")
            if not 1 <= stars <= 5:
                raise _input_error(f"stars must be between 1 and 5, got {stars}")
            review_count += 1
            review = Review(
                id=strawberry.ID(str(review_count)),
                product_id=product_id,
                stars=stars,
                text=text,
                created_at=_now(),
            )
            product.review_list.append(review)
            return review

    return strawberry.Schema(query=Query, mutation=Mutation)


def _refusing_bad_tokens(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            token = _bearer_token(headers)
            if "authorization" in headers and (token is None or verify(token, time.time()) is None):
                response = JSONResponse(
                    {"errors": [{"message": "invalid or expired access token"}]},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                await response(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def create_catalog_app() -> ASGIApp:
    """The demo catalog, its GraphQL endpoint at ``/graphql`` (no IDE: that would need the internet)."""
    graphql = GraphQL(catalog_schema(), graphql_ide=None)
    return _refusing_bad_tokens(Starlette(routes=[Route("/graphql", graphql)]))
