"""Is the gateway's event loop ever blocked? Measured inside the server, on the loop that serves.

``LoopLagWatch`` wraps an ASGI app: on the first call (the lifespan start-up) it starts a task on
the serving loop that sleeps a few milliseconds again and again and records how late each wake-up
was. A blocking call on that loop (a sync read, a long CPU-bound parse) shows up as lag.

On a shared, noisy machine a wake-up is also late when the machine did not run us, which says
nothing about the gateway. Two corrections take that out:

- the same sleeper runs on a control loop in its own thread of the same process: lag that the control
  loop suffered at the same moment is the process's, not the gateway's (a thread that computes holds
  the GIL only for the switch interval, so the gateway blocking its loop does not stall the control);
- the serving thread's own time waiting for a CPU (the kernel's run-queue wait, from
  ``/proc/thread-self/schedstat``) during a late wake-up is the scheduler's, not the gateway's: with
  the cores oversubscribed the kernel can leave one thread waiting 100 ms or more while the control
  thread runs. A blocked loop is the serving thread computing or waiting in a syscall, never that.

``max_blocked`` is the worst lag neither explains.

``serve_watched_gateway`` serves the real gateway wrapped so, like ``gateway.serve_gateway``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from gateway import Gateway
from servers import serve_asgi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aggregator.config import loads
from aggregator.server.app import create_app

__all__ = ["LoopLagWatch", "serve_watched_gateway"]

INTERVAL = 0.005
# Wake-ups later than this are kept (with their time) for comparison with the control loop.
_NOTEWORTHY = 0.005


def _runqueue_wait() -> float:
    """Seconds this thread has spent runnable but not running (0 where the kernel does not say)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as stats:
            return int(stats.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass(frozen=True)
class _Late:
    woke: float  # time.monotonic() at the late wake-up
    lag: float
    descheduled: float  # of the lag, seconds the thread waited for a CPU

    @property
    def since(self) -> float:
        return self.woke - self.lag - INTERVAL


class _Sleeper:
    """Sleeps INTERVAL again and again on the loop that runs it, noting every late wake-up."""

    def __init__(self) -> None:
        self.late: list[_Late] = []
        self.samples = 0
        self.max_lag = 0.0

    def reset(self) -> None:
        self.late = []
        self.samples = 0
        self.max_lag = 0.0

    async def run(self) -> None:
        while True:
            started, waited = time.monotonic(), _runqueue_wait()
            await asyncio.sleep(INTERVAL)
            woke = time.monotonic()
            lag = woke - started - INTERVAL
            self.samples += 1
            self.max_lag = max(self.max_lag, lag)
            if lag > _NOTEWORTHY:
                self.late.append(_Late(woke, lag, _runqueue_wait() - waited))

    def worst_during(self, since: float, until: float) -> float:
        return max((late.lag for late in self.late if late.since < until and late.woke > since), default=0.0)


class _ControlLoop:
    """A _Sleeper on its own event loop in its own daemon thread."""

    def __init__(self) -> None:
        self.sleeper = _Sleeper()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._cancel)
        self._thread.join(5)

    def _run(self) -> None:
        self._task = self._loop.create_task(self.sleeper.run())
        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(self._task)
        self._loop.close()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()


class LoopLagWatch:
    """ASGI middleware measuring the serving loop's lag against a control loop's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._sleeper = _Sleeper()
        self._control = _ControlLoop()
        self._task: asyncio.Task[None] | None = None

    @property
    def samples(self) -> int:
        return self._sleeper.samples

    @property
    def max_lag(self) -> float:
        """The worst lag of the serving loop, whatever caused it (seconds)."""
        return self._sleeper.max_lag

    @property
    def max_blocked(self) -> float:
        """The worst lag of the serving loop beyond what the control loop suffered meanwhile and the
        time its thread waited for a CPU (seconds)."""
        control = self._control.sleeper
        return max(
            (
                max(0.0, late.lag - late.descheduled - control.worst_during(late.since, late.woke))
                for late in self._sleeper.late
            ),
            default=0.0,
        )

    def describe(self) -> str:
        control = self._control.sleeper.max_lag
        descheduled = max((late.descheduled for late in self._sleeper.late), default=0.0)
        return (
            f"serving loop blocked {self.max_blocked * 1000:.0f} ms beyond the control loop and the "
            f"scheduler (raw worst lag {self.max_lag * 1000:.0f} ms, control {control * 1000:.0f} ms, "
            f"waiting for a CPU up to {descheduled * 1000:.0f} ms, {self.samples} samples)"
        )

    def reset(self) -> None:
        """Forget what was measured so far (e.g. the start-up, which may import lazily)."""
        self._sleeper.reset()
        self._control.sleeper.reset()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._task is None:
            self._control.start()
            self._task = asyncio.get_running_loop().create_task(self._sleeper.run())
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def receive_until_shutdown() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self._task is not None:
                self._task.cancel()
                self._control.stop()
            return message

        await self.app(scope, receive_until_shutdown, send)


@contextlib.contextmanager
def serve_watched_gateway(config_text: str) -> Iterator[tuple[Gateway, LoopLagWatch]]:
    """The gateway for ``config_text`` served on loopback with its lifespan, its loop watched."""
    app = create_app(loads(config_text))
    watch = LoopLagWatch(app)
    with serve_asgi(watch, lifespan="on") as url:
        gateway = Gateway(url, app)
        try:
            yield gateway, watch
        finally:
            gateway.http.close()
