"""The per-integration retry budget, after gRPC's retry throttling.

Tokens start at ``max_tokens``; every failed attempt takes one, every successful attempt gives back
``token_ratio``; a retry is allowed only while more than half the tokens remain. During an outage the
tokens drain within a few calls and retries stop, so the upstream sees about one attempt per call
instead of ``max_attempts``; successes refill the bucket slowly once it recovers.
"""

from __future__ import annotations

from aggregator.config import models

__all__ = ["RetryThrottle"]


class RetryThrottle:
    """The runtime state of a ``models.RetryBudget`` policy."""

    __slots__ = ("_max", "_ratio", "_threshold", "_tokens")

    def __init__(self, policy: models.RetryBudget) -> None:
        self._max = policy.max_tokens
        self._ratio = policy.token_ratio
        self._threshold = policy.max_tokens / 2
        self._tokens = policy.max_tokens

    @property
    def tokens(self) -> float:
        return self._tokens

    def allow_retry(self) -> bool:
        return self._tokens > self._threshold

    def on_success(self) -> None:
        self._tokens = min(self._max, self._tokens + self._ratio)

    def on_failure(self) -> None:
        self._tokens = max(0.0, self._tokens - 1)
