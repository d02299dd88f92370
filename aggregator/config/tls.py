"""The ``tls:`` block of an integration or of ``defaults:``: a private certificate authority to trust,
and a client certificate and key for mutual TLS. Paths are relative to the config file; each must be
a readable file, and a client certificate comes with its key."""

from __future__ import annotations

from pathlib import Path

from aggregator.config.models import TlsFiles
from aggregator.config.tree import Node, Reader
from aggregator.config.values import non_empty_string

__all__ = ["read_tls"]

_KEYS = ("ca_file", "cert_file", "key_file")


def read_tls(reader: Reader, node: Node | None, base_dir: Path) -> TlsFiles | None:
    """The block's files, resolved and checked; None when there is no block."""
    if node is None:
        return None
    entries = reader.fields(node, _KEYS)
    paths: dict[str, str] = {}
    for key, child in entries.items():
        relative = reader.read(child, non_empty_string, "")
        if not relative:
            continue
        path = base_dir / relative
        if not path.is_file():
            reader.report(child, f"cannot read {str(path)!r}: no such file")
        paths[key] = str(path)
    if ("cert_file" in entries) != ("key_file" in entries):
        reader.report(node, "cert_file and key_file go together: the client certificate and its private key")
    if not entries:
        reader.report(node, "give ca_file (a private authority), and/or cert_file with key_file")
    return TlsFiles(**paths)
