"""A gRPC integration's ``proto:`` files, compiled at load time into a descriptor set.

protoc runs in-process (grpcio-tools) with ``--descriptor_set_out``: the imports and the comments
(``--include_source_info``) come with it, and no generated code is written anywhere. The messages are
built at run time from the set (descriptor_pool, message_factory).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProtoError", "compile_protos"]

# protoc's diagnostics: "inventory.proto:12:3: Expected \";\"."
_DIAGNOSTIC = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")
# grpc_tools.protoc (grpcio-tools 1.85) reports errors on the process's file descriptor 2 only; no
# public API returns them for a descriptor-set run, so fd 2 is captured around the run, one at a time.
_STDERR_LOCK = threading.Lock()


@dataclass(frozen=True)
class ProtoError(Exception):
    """What protoc refused: one message per problem, with the file and line when it gave them."""

    messages: tuple[str, ...]


def _well_known_types() -> str:
    import grpc_tools

    return str(Path(grpc_tools.__file__).parent / "_proto")


def _relative(file: Path, include: Sequence[Path]) -> str:
    """``file`` as protoc names it: relative to the first import directory that holds it."""
    for directory in include:
        try:
            return file.relative_to(directory).as_posix()
        except ValueError:
            continue
    raise AssertionError(f"{file} is under no import directory")  # compile_protos adds its folder


def compile_protos(files: Sequence[Path], proto_paths: Sequence[Path]) -> bytes:
    """The serialized FileDescriptorSet of ``files`` and everything they import.

    ``proto_paths`` are the import directories; each file's own folder comes after them, and the
    well-known types (``google/protobuf/*.proto``) last. Raises ProtoError.
    """
    from grpc_tools import protoc

    resolved = [file.resolve() for file in files]
    include = [path.resolve() for path in proto_paths]
    include += [file.parent for file in resolved if file.parent not in include]
    names = [_relative(file, include) for file in resolved]
    with tempfile.TemporaryDirectory(prefix="aggregator-protoc-") as scratch:
        out = Path(scratch) / "descriptors.pb"
        errors = Path(scratch) / "stderr.txt"
        args = [
            "protoc",
            *(f"--proto_path={path}" for path in include),
            f"--proto_path={_well_known_types()}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *names,
        ]
        with _STDERR_LOCK, errors.open("w+b") as capture:
            saved = os.dup(2)
            try:
                os.dup2(capture.fileno(), 2)
                status = protoc.main(args)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
        if status != 0:
            raise ProtoError(_messages(text))
        return out.read_bytes()


def _messages(text: str) -> tuple[str, ...]:
    """protoc's diagnostics as ``message (line N of FILE)``, like the config's other file errors."""
    messages: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("warning:"):
            continue
        match = _DIAGNOSTIC.match(line)
        if match:
            messages.append(f"{match['message']} (line {match['line']} of {match['file']})")
        else:
            messages.append(line)
    return tuple(messages) or ("protoc failed without a message",)
