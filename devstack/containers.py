"""Lambda containers of one function, each in a process of its own.

Lambda serves concurrent requests to a function with concurrent containers, each a
separate process with its own module globals. A handler may rely on that:
Powertools' resolver keeps the current event in a class attribute, and its metrics
in a process-wide set, so two invocations in one process at once would read each
other's requests. The local stack therefore scales the API function the way Lambda
does: up to `size` warm containers (processes), a new one started (a cold start)
only when every warm one is busy, and invocations beyond that waiting their turn
in arrival order.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from multiprocessing.connection import Connection
from typing import Any

from devstack.lambda_context import LocalContext

log = logging.getLogger("devstack.containers")

# spawn, not fork: the parent runs threads (HTTP server, pollers, the emulator), and
# a forked child would inherit their locks in whatever state they were.
_CONTEXT = multiprocessing.get_context("spawn")
# A container that does not come up in this long is reported, not waited for.
START_TIMEOUT_SECONDS = 60.0


class InvocationFailed(Exception):
    """The container died, timed out or could not start (API Gateway answers 502)."""


class FunctionError(InvocationFailed):
    """The handler raised; the container itself is fine and stays warm, as in Lambda."""


def _container_main(
    function_id: str, template: dict[str, Any], timeout_seconds: float, connection: Connection
) -> None:
    # Imported in the child: the parent never needs the handler's module.
    from devstack.invoke import handler_for

    try:
        handler = handler_for(function_id, template)
    except Exception as exc:
        connection.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    connection.send(("ready", None))
    while True:
        try:
            event = connection.recv()
        except (EOFError, OSError):
            return  # the parent closed its end: the container is being retired
        context = LocalContext(function_name=function_id, timeout_seconds=timeout_seconds)
        try:
            connection.send(("ok", handler(event, context)))
        except Exception as exc:
            connection.send(("error", f"{type(exc).__name__}: {exc}"))


class Container:
    """One warm container: a process running the handler, one invocation at a time."""

    def __init__(self, function_id: str, template: dict[str, Any], timeout_seconds: float) -> None:
        self.function_id = function_id
        self.timeout_seconds = timeout_seconds
        self._connection, child = _CONTEXT.Pipe()
        self._process = _CONTEXT.Process(
            target=_container_main,
            args=(function_id, template, timeout_seconds, child),
            name=f"{function_id}-container",
            daemon=True,
        )
        self._process.start()
        child.close()
        if not self._connection.poll(START_TIMEOUT_SECONDS):
            self.close()
            raise InvocationFailed(f"{function_id}: the container did not start")
        kind, detail = self._receive()
        if kind != "ready":
            self.close()
            raise InvocationFailed(f"{function_id} cannot be loaded: {detail}")

    def _receive(self) -> tuple[str, Any]:
        try:
            kind, payload = self._connection.recv()
        except (EOFError, OSError) as exc:
            raise InvocationFailed(f"{self.function_id}: the container exited") from exc
        return str(kind), payload

    def invoke(self, event: dict[str, Any]) -> Any:
        try:
            self._connection.send(event)
        except (OSError, ValueError) as exc:
            raise InvocationFailed(f"{self.function_id}: the container is gone") from exc
        # A little over the function's timeout: Lambda stops it there, so do we.
        if not self._connection.poll(self.timeout_seconds + 1.0):
            raise InvocationFailed(f"{self.function_id} timed out after {self.timeout_seconds:g} s")
        kind, payload = self._receive()
        if kind == "error":
            raise FunctionError(f"{self.function_id} raised {payload}")
        return payload

    def close(self) -> None:
        self._connection.close()
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)


class ContainerPool:
    """Up to `size` containers of one function, started on demand and kept warm."""

    def __init__(
        self,
        function_id: str,
        template: dict[str, Any],
        *,
        size: int,
        timeout_seconds: float,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one container")
        self.function_id = function_id
        self.size = size
        self._template = template
        self._timeout = timeout_seconds
        self._idle: queue.Queue[Container] = queue.Queue()
        self._lock = threading.Lock()
        self._started = 0
        self._closed = False
        self._all: list[Container] = []

    @property
    def started(self) -> int:
        with self._lock:
            return self._started

    def warm(self) -> ContainerPool:
        """Start one container now, so the first request is not a cold start and a
        function that cannot load is reported at start-up."""
        self._release(self._start())
        return self

    def invoke(self, event: dict[str, Any]) -> Any:
        container = self._acquire()
        try:
            result = container.invoke(event)
        except FunctionError:
            self._release(container)
            raise
        except InvocationFailed:
            self._retire(container)
            raise
        self._release(container)
        return result

    def _start(self) -> Container:
        with self._lock:
            self._started += 1
        try:
            container = Container(self.function_id, self._template, self._timeout)
        except BaseException:
            with self._lock:
                self._started -= 1
            raise
        with self._lock:
            self._all.append(container)
        return container

    def _acquire(self) -> Container:
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                if self._closed:
                    raise InvocationFailed(f"{self.function_id}: the stack is stopping")
                can_start = self._started < self.size
            if can_start:
                return self._start()
            try:
                # Waiters are woken in arrival order; the timeout only re-checks
                # whether a retired container left room to start another.
                return self._idle.get(timeout=0.5)
            except queue.Empty:
                continue

    def _release(self, container: Container) -> None:
        with self._lock:
            closed = self._closed
        if closed:
            container.close()
        else:
            self._idle.put(container)

    def _retire(self, container: Container) -> None:
        container.close()
        with self._lock:
            self._started -= 1
            if container in self._all:
                self._all.remove(container)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            containers, self._all = list(self._all), []
        for container in containers:
            container.close()
