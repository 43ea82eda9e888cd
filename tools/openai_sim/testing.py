"""Run the simulator inside a test process, and drive its admin API.

The public surface (other services' tests depend on it; keep it small and stable)::

    from tools.openai_sim.testing import running_simulator

    with running_simulator(faults=["usage=rate_limit:retry_after=2"], clock=None) as sim:
        client = openai.OpenAI(base_url=sim.base_url, api_key=sim.api_key, admin_api_key=sim.admin_key)
        ...
        sim.set_fault("chat", "error", count=1)        # modes: rate_limit(retry_after) error(status)
        sim.clear_faults()                              #   slow(seconds) malformed hang(seconds) lag(seconds)
        sim.stats()["requests"]["usage"]                # requests received per endpoint
        sim.requests()                                  # every served usage record (dicts)
        sim.inject_usage(model="gpt-4o-2024-08-06", input_text_tokens=100, output_text_tokens=20)
        sim.set_clock(1_767_225_600)                    # pin "now" (None: real time again)
        sim.reset()                                     # forget usage, faults, counters, caches, clock

``running_simulator(*, faults=(), clock=None, startup_timeout=10.0)`` serves the app with uvicorn on a
free loopback port in a daemon thread, yields a :class:`SimulatorHandle` once the server accepts
connections, and stops it on exit (clearing faults first, so a simulated hang cannot delay shutdown).

:class:`SimulatorHandle` ``(origin)`` also attaches to a simulator running elsewhere, e.g. the one
``make run`` starts: ``SimulatorHandle("http://127.0.0.1:8099")``.  Its attributes: ``origin``,
``base_url`` (``origin + "/v1"``, for the SDK), ``api_key`` (an ``sk-`` key), ``admin_key`` (an
``sk-admin-`` key).  Any ``sk-`` key works; the key only decides the recorded ``api_key_id``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from .app import create_app
from .state import SimState, parse_fault_flag

__all__ = ["SimulatorHandle", "running_simulator"]


class SimulatorHandle:
    api_key = "sk-sim-test-0123456789abcdef"
    admin_key = "sk-admin-sim-test-0123456789abcdef"

    def __init__(self, origin: str, timeout: float = 10.0) -> None:
        self.origin = origin.rstrip("/")
        self.base_url = self.origin + "/v1"
        self._timeout = timeout

    def set_fault(
        self, endpoint: str, mode: str, *, count: int | None = None, **params: float
    ) -> dict[str, Any]:
        """Make ``endpoint`` misbehave (``count`` times, or until cleared)."""
        body: dict[str, Any] = {"mode": mode, **params}
        if count is not None:
            body["count"] = count
        return self._call("PUT", f"/_sim/faults/{endpoint}", body)

    def clear_faults(self, endpoint: str | None = None) -> None:
        self._call("DELETE", "/_sim/faults" + (f"/{endpoint}" if endpoint else ""))

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_sim/stats")

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_sim/requests")["data"]

    def inject_usage(self, *, model: str, **fields: Any) -> dict[str, Any]:
        """Record usage the simulator did not serve; fields as in ``POST /_sim/usage``."""
        return self._call("POST", "/_sim/usage", {"model": model, **fields})

    def set_clock(self, now: int | None) -> None:
        self._call("PUT", "/_sim/clock", {"now": now})

    def reset(self) -> None:
        self._call("POST", "/_sim/reset")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.origin + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            return json.loads(response.read() or b"null")


@contextmanager
def running_simulator(
    *, faults: Iterable[str] = (), clock: int | None = None, startup_timeout: float = 10.0
) -> Iterator[SimulatorHandle]:
    """Serve a fresh simulator on 127.0.0.1 for the duration of the ``with`` block.

    ``faults`` are start-up faults in the ``--fault`` flag syntax; ``clock`` pins the simulated time.
    """
    state = SimState()
    for flag in faults:
        endpoint, fault = parse_fault_flag(flag)
        state.set_fault(endpoint, fault)
    state.set_clock(clock)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; the bound socket removes any race for it
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(state),
        lifespan="off",
        log_level="warning",
        ws="websockets-sansio",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"openai-sim-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the OpenAI simulator did not start")
            time.sleep(0.01)
        yield SimulatorHandle(f"http://127.0.0.1:{port}")
    finally:
        state.clear_faults()
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()
