"""Server reflection (grpc.reflection.v1alpha, which grpcio and most servers serve): the files that
define some services, and every file they import, as one serialized FileDescriptorSet."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2

__all__ = ["reflect"]

_METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


async def reflect(
    channel: grpc.aio.Channel,
    services: Iterable[str],
    metadata: tuple[tuple[str, str], ...],
    *,
    timeout: float,
) -> bytes:
    """The descriptor set of ``services`` as the server describes them; LookupError for a service
    or file it does not know, grpc.RpcError when it cannot be asked."""
    # The channel's own stream_stream: grpcio-reflection's stub is typed for synchronous channels.
    info = channel.stream_stream(
        _METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    stream = info(timeout=timeout, metadata=metadata)
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    async def ask(request: reflection_pb2.ServerReflectionRequest, what: str) -> None:
        await stream.write(request)
        response = await stream.read()
        if response is grpc.aio.EOF or not isinstance(response, reflection_pb2.ServerReflectionResponse):
            raise LookupError(f"the server ended reflection when asked for {what}")
        if response.HasField("error_response"):
            raise LookupError(f"the server does not know {what}: {response.error_response.error_message}")
        for raw in response.file_descriptor_response.file_descriptor_proto:
            file = descriptor_pb2.FileDescriptorProto.FromString(raw)
            files.setdefault(file.name, file)

    try:
        for service in services:
            await ask(reflection_pb2.ServerReflectionRequest(file_containing_symbol=service), service)
        missing = _missing(files)
        while missing:
            name = missing.pop()
            await ask(reflection_pb2.ServerReflectionRequest(file_by_filename=name), name)
            if name not in files:
                raise LookupError(f"the server answered without {name} when asked for it")
            missing = _missing(files)
        await stream.done_writing()
    finally:
        stream.cancel()
    return descriptor_pb2.FileDescriptorSet(file=list(files.values())).SerializeToString()


def _missing(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    return sorted({dep for file in files.values() for dep in file.dependency if dep not in files})
