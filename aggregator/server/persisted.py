"""Persisted queries: Apollo's automatic persisted queries (APQ) and trusted documents.

APQ, as Apollo Server answers it: a request's ``extensions.persistedQuery`` is
``{"version": 1, "sha256Hash": "<hex>"}``.

- The hash without a query runs the document registered under it; an unknown hash gets the GraphQL
  error PERSISTED_QUERY_NOT_FOUND with HTTP 200, so that Apollo's link sends the query with the hash.
- The hash with the query registers the query once it ran without a request error, if
  sha256(query) is the hash: else 400 PERSISTED_QUERY_HASH_MISMATCH.
- Another version is a 400 BAD_REQUEST. With ``apq_cache_bytes: 0`` nothing is registered, and an
  unknown hash gets PERSISTED_QUERY_NOT_SUPPORTED (the link then stops sending hashes).
- The store is an LRU bounded by the registered documents' total size in bytes.

Trusted documents (``server.persisted_documents``): the manifest's documents are found by the APQ
hash or by ``documentId`` (the GraphQL-over-HTTP persisted documents proposal; ``sha256:<hex>`` or
the manifest's own id) before the APQ store is asked. With ``only: true`` a query text that is not
one of the manifest's documents, and so every APQ registration, is refused with 400
PERSISTED_QUERY_REQUIRED.

A request with neither the extension nor ``documentId`` costs one dict lookup here, or with
``only: true`` one set lookup of its text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from aggregator.config.manifest import document_key
from aggregator.config.models import ServerConfig
from aggregator.errors import (
    PERSISTED_QUERY_HASH_MISMATCH,
    PERSISTED_QUERY_NOT_FOUND,
    PERSISTED_QUERY_NOT_SUPPORTED,
    PERSISTED_QUERY_REQUIRED,
    RequestRefused,
)

__all__ = ["PersistedQueries"]

APQ_VERSION = 1
# As Apollo Server: a "not found" must not be cached on the way, the same request succeeds later.
_NO_CACHE = {"cache-control": "private, no-cache, must-revalidate"}


class PersistedQueries:
    """The documents a request may name instead of sending them: trusted ones, and registered ones."""

    __slots__ = ("_capacity", "_size", "_store", "_trusted", "_trusted_texts", "only")

    def __init__(self, server: ServerConfig) -> None:
        manifest = server.persisted_documents
        self._trusted: dict[str, str] = dict(manifest.documents) if manifest else {}
        self._trusted_texts = frozenset(self._trusted.values())
        self.only = bool(manifest and manifest.only)
        self._capacity = server.apq_cache_bytes
        self._store: OrderedDict[str, str] = OrderedDict()
        self._size = 0

    def resolve(
        self, query: object, extensions: dict[str, Any] | None, document_id: object
    ) -> tuple[object, str | None]:
        """The query to run, and the hash to register it under once it ran (None: nothing to register).

        Raises RequestRefused for a request that names no document it may run.
        """
        if document_id is not None:
            if not isinstance(document_id, str) or not document_id:
                raise RequestRefused(400, "'documentId' must be a non-empty string.")
            if query is not None:
                raise RequestRefused(400, "Send either 'query' or 'documentId', not both.")
            return self._find(document_key(document_id)), None
        persisted = extensions.get("persistedQuery") if extensions else None
        if persisted is None:
            self._check_trusted(query)
            return query, None
        sha = _hash_of(persisted)
        if query is None or query == "":
            return self._find(sha), None
        if not isinstance(query, str) or hashlib.sha256(query.encode()).hexdigest() != sha:
            raise RequestRefused(
                400,
                "The persisted query's sha256Hash is not the SHA-256 of the query sent with it.",
                code=PERSISTED_QUERY_HASH_MISMATCH,
            )
        self._check_trusted(query)
        registers = self._capacity and not self.only and sha not in self._trusted
        return query, (sha if registers else None)

    def register(self, sha: str, query: str) -> None:
        """Keep ``query`` under ``sha``, the least recently used documents leaving to make room."""
        size = len(query.encode())
        if size > self._capacity or sha in self._store:
            return
        self._store[sha] = query
        self._size += size
        while self._size > self._capacity:
            _, evicted = self._store.popitem(last=False)
            self._size -= len(evicted.encode())

    def _find(self, key: str) -> str:
        query = self._trusted.get(key)
        if query is not None:
            return query
        query = self._store.get(key)
        if query is not None:
            self._store.move_to_end(key)
            return query
        if not self._capacity and not self._trusted:
            raise RequestRefused(
                200, "PersistedQueryNotSupported", _NO_CACHE, code=PERSISTED_QUERY_NOT_SUPPORTED
            )
        raise RequestRefused(200, "PersistedQueryNotFound", _NO_CACHE, code=PERSISTED_QUERY_NOT_FOUND)

    def _check_trusted(self, query: object) -> None:
        if self.only and query is not None and query not in self._trusted_texts:
            raise RequestRefused(
                400,
                "Only trusted documents are served here: send the id of a document of the persisted "
                "documents manifest ('documentId', or the persistedQuery extension's sha256Hash).",
                code=PERSISTED_QUERY_REQUIRED,
            )


def _hash_of(persisted: object) -> str:
    """The sha256Hash of a ``persistedQuery`` extension of the supported version, lower-cased."""
    if not isinstance(persisted, dict):
        raise RequestRefused(400, "'extensions.persistedQuery' must be a JSON object.")
    if persisted.get("version") != APQ_VERSION:
        raise RequestRefused(
            400, f"Unsupported persisted query version {persisted.get('version')!r}; supported: 1."
        )
    sha = persisted.get("sha256Hash")
    if not isinstance(sha, str) or not sha:
        raise RequestRefused(400, "'extensions.persistedQuery.sha256Hash' must be a non-empty string.")
    return sha.lower()
