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
import threading
from collections import deque
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


class _Turn:
    """One invocation waiting for a container: handed one, or leave to start one."""

    START = object()
    CLOSED = object()

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._given: Container | object | None = None

    def give(self, what: Container | object) -> None:
        self._given = what
        self._ready.set()

    def wait(self) -> Container | object:
        self._ready.wait()
        assert self._given is not None
        return self._given


class ContainerPool:
    """Up to `size` containers of one function, started on demand and kept warm.

    Invocations that find every container busy queue in arrival order, and a
    container that comes free is handed to the first of them directly: no late
    arrival can take it first, so no caller waits behind a hundred others twice.
    """

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
        self._lock = threading.Lock()
        self._idle: list[Container] = []
        self._turns: deque[_Turn] = deque()
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
        with self._lock:
            self._started += 1
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

    def _acquire(self) -> Container:
        with self._lock:
            if self._closed:
                raise InvocationFailed(f"{self.function_id}: the stack is stopping")
            if self._idle:
                return self._idle.pop()
            if self._started < self.size:
                self._started += 1
                turn = None
            else:
                turn = _Turn()
                self._turns.append(turn)
        given = turn.wait() if turn is not None else _Turn.START
        if isinstance(given, Container):
            return given
        if given is _Turn.CLOSED:
            raise InvocationFailed(f"{self.function_id}: the stack is stopping")
        return self._start()

    def _start(self) -> Container:
        """A new container for a caller already counted in `_started`."""
        try:
            container = Container(self.function_id, self._template, self._timeout)
        except BaseException:
            self._free_slot()
            raise
        with self._lock:
            self._all.append(container)
        return container

    def _release(self, container: Container) -> None:
        with self._lock:
            if not self._closed and self._turns:
                self._turns.popleft().give(container)
                return
            if not self._closed:
                self._idle.append(container)
                return
        container.close()

    def _retire(self, container: Container) -> None:
        container.close()
        with self._lock:
            if container in self._all:
                self._all.remove(container)
        self._free_slot()

    def _free_slot(self) -> None:
        # A container fewer: the first waiting caller starts the replacement.
        with self._lock:
            if self._turns and not self._closed:
                self._turns.popleft().give(_Turn.START)
            else:
                self._started -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            containers, self._all = list(self._all), []
            turns, self._turns = list(self._turns), deque()
        for turn in turns:
            turn.give(_Turn.CLOSED)
        for container in containers:
            container.close()
