"""A real GraphQL upstream for the tests: a small Strawberry catalog served by its own ASGI app.

It answers queries and mutations, can fail partially (``Product.stock`` raises for some ids), can be
slow (``slowProduct``), and records the headers, the GraphQL requests (query and variables) and the
number of requests it received, and every review it created, so tests can count attempts and check
what was sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import strawberry
from starlette.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send
from strawberry.asgi import GraphQL

__all__ = ["Catalog"]


@strawberry.enum
class Currency(Enum):
    EUR = "EUR"
    USD = "USD"


@strawberry.type
class Price:
    amount: float
    currency: Currency


@strawberry.type
class Review:
    id: strawberry.ID
    stars: int
    product_id: strawberry.ID


@strawberry.type
class Product:
    id: strawberry.ID
    title: str
    price: Price
    tags: list[str]

    @strawberry.field
    def stock(self) -> int | None:
        if self.id == "13":
            raise ValueError("stock service unavailable for product 13")
        return 7


PRODUCTS = {
    str(n): Product(
        id=strawberry.ID(str(n)),
        title=f"Product {n}",
        price=Price(amount=n * 1.5, currency=Currency.EUR),
        tags=["a", "b"],
    )
    for n in range(1, 20)
}


@dataclass
class Catalog:
    """The upstream's state: what it received and what it created."""

    requests: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    # Each GraphQL request's JSON body: {"query": ..., "variables": ..., ...}.
    received: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[Review] = field(default_factory=list)
    failing: bool = False
    delay: float = 0.0
    schema: strawberry.Schema | None = None

    def app(self) -> Any:
        """The ASGI app; ``self.schema`` is its schema afterwards (``str()`` gives the SDL)."""
        catalog = self

        @strawberry.type
        class Query:
            @strawberry.field
            def product(self, id: strawberry.ID) -> Product | None:
                return PRODUCTS.get(str(id))

            @strawberry.field
            def products(self, ids: list[strawberry.ID], min_price: float | None = None) -> list[Product]:
                found = [PRODUCTS[str(i)] for i in ids if str(i) in PRODUCTS]
                return [p for p in found if min_price is None or p.price.amount >= min_price]

            @strawberry.field
            async def slow_product(self, id: strawberry.ID) -> Product | None:
                await asyncio.sleep(catalog.delay)
                return PRODUCTS.get(str(id))

            @strawberry.field
            def broken(self) -> str:
                raise ValueError("broken on purpose")

        @strawberry.type
        class Mutation:
            @strawberry.mutation
            def add_review(self, product_id: strawberry.ID, stars: int) -> Review:
                review = Review(
                    id=strawberry.ID(str(len(catalog.reviews) + 1)), stars=stars, product_id=product_id
                )
                catalog.reviews.append(review)
                return review

        self.schema = strawberry.Schema(query=Query, mutation=Mutation)
        graphql = GraphQL(self.schema, graphql_ide=None)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                catalog.requests += 1
                catalog.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
                receive = catalog._recording(receive)
                if catalog.failing:
                    await JSONResponse({"errors": [{"message": "overloaded"}]}, status_code=503)(
                        scope, receive, send
                    )
                    return
            await graphql(scope, receive, send)

        return app

    def _recording(self, receive: Receive) -> Receive:
        """``receive`` that also keeps the request's JSON body once it is whole."""
        chunks: list[bytes] = []

        async def recording() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
                if not message.get("more_body") and chunks != [b""]:
                    self.received.append(json.loads(b"".join(chunks)))
            return message

        return recording
