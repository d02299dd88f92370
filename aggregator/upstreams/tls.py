"""An integration's ``tls:`` block as https (an ``ssl.SSLContext``) and gRPC (channel credentials) use it.

Without a ``ca_file`` the default trust store is that of httpx: certifi's bundle, or the file that
``SSL_CERT_FILE`` names (as OpenSSL and httpx honour it). A ``cert_file`` and ``key_file`` are the
client certificate presented for mutual TLS.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import certifi
import grpc
import httpx

from aggregator.config.models import TlsFiles

__all__ = ["grpc_credentials", "ssl_context"]


def ssl_context(tls: TlsFiles | None) -> ssl.SSLContext | None:
    """The context https calls verify with; None for the client's default (no ``tls:`` block)."""
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=tls.ca_file) if tls.ca_file else httpx.create_ssl_context()
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def _trusted(tls: TlsFiles | None) -> bytes:
    if tls is not None and tls.ca_file:
        return Path(tls.ca_file).read_bytes()
    return Path(os.environ.get("SSL_CERT_FILE") or certifi.where()).read_bytes()


def grpc_credentials(tls: TlsFiles | None) -> grpc.ChannelCredentials:
    """A grpcs:// channel's credentials: the same trust store and client certificate as https."""
    key = Path(tls.key_file).read_bytes() if tls is not None and tls.key_file else None
    chain = Path(tls.cert_file).read_bytes() if tls is not None and tls.cert_file else None
    return grpc.ssl_channel_credentials(
        root_certificates=_trusted(tls), private_key=key, certificate_chain=chain
    )
