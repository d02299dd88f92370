"""Upstream kinds: how one attempt reaches a REST or GraphQL API."""
