"""Resilience: the circuit breaker, retries, the retry budget, the bulkhead and the executor."""
