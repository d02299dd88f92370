"""The gateway as its own process, started the way users start it: ``aggregator serve -c FILE --port N``.

``GatewayProcess`` also reads what the kernel knows of that process (``/proc/PID``): its resident
memory and its open sockets, which the chaos run compares before and after.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

__all__ = ["GatewayProcess", "gateway_process"]

READY_SECONDS = 30.0


class GatewayProcess:
    def __init__(self, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.process = process
        self.url = url
        self._log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident set size, from /proc/PID/status."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line in /proc status")

    def sockets(self) -> list[str]:
        """Its open sockets, from /proc/PID/fd: TCP ones as "local -> remote STATE", others by inode."""
        tcp = _tcp_table(self.pid)
        found = []
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with contextlib.suppress(FileNotFoundError):  # closed while we looked
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inode = target[len("socket:[") : -1]
                    found.append(tcp.get(inode, f"socket {inode}"))
        return sorted(found)

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far, from /proc/PID/stat."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def log(self) -> str:
        """Everything it wrote to stdout and stderr so far."""
        return self._log.read_text(errors="replace")


_TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT", "0A": "LISTEN"}


def _address(text: str) -> str:
    host, port = text.split(":")
    octets = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0)) if len(host) == 8 else "[v6]"
    return f"{octets}:{int(port, 16)}"


def _tcp_table(pid: int) -> dict[str, str]:
    """inode -> "local -> remote STATE" for the TCP sockets of the process's network namespace."""
    table = {}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            state = _TCP_STATES.get(fields[3], fields[3])
            table[fields[9]] = f"{_address(fields[1])} -> {_address(fields[2])} {state}"
    return table


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise AssertionError(f"the gateway exited with {gateway.process.returncode}:\n{gateway.log()}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{gateway.url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"the gateway was not ready within {READY_SECONDS}s:\n{gateway.log()}")


@contextlib.contextmanager
def gateway_process(
    config: Path, *, env: Mapping[str, str] | None = None, log_level: str = "warning"
) -> Iterator[GatewayProcess]:
    """Start the gateway on a free port, wait until /readyz says ready; kill it if still running after."""
    port = _free_port()
    log = config.with_suffix(".log")
    command = [sys.executable, "-m", "aggregator.cli", "serve", "-c", str(config), "--port", str(port)]
    # Output goes to a file, not a pipe: a pipe nobody reads would fill and block the gateway's writes.
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--log-level", log_level],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    gateway = GatewayProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        _wait_ready(gateway)
        yield gateway
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)
