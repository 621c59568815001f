"""uvicorn's h11 protocol with the bounds uvicorn lacks (checked against uvicorn 0.54.0 and
h11 0.16.0, pinned exactly in pyproject.toml: this subclass uses uvicorn internals, `conn`,
`connections`, `transport`, `on_response_complete`, `send_400_response`; the tests in
tests/reliability/test_serving_abuse.py and tests/serving/ exercise every one of them).

uvicorn arms no timer on a new connection, and its only timer (keep-alive) is armed after a
response and cancelled by any received byte; its limit_concurrency is checked only once a
whole head has arrived and counts idle sockets. So a client that connects and sends nothing,
or one header byte every few seconds (slowloris), would hold a connection forever. Here each
connection has one timer that follows h11's view of the client:

- waiting for a request head (a new connection, or after a response on keep-alive): the whole
  head must arrive within `head_timeout` seconds; trickled bytes never extend it. Expiry: 408
  if part of a head came, else a silent close.
- reading a body: `body_timeout` for the whole body, a backstop (the app answers 408 a little
  earlier). Expiry closes the connection; the app sees http.disconnect.
- while the app works on a request: no timer (that is not the client's fault).
- closing with a request body left unread (401, 405, 413 before the body): the answer is sent,
  then the write side is shut (FIN) and what the client still sends is read and dropped for at
  most `linger_seconds`. Closing at once would make the kernel answer the unread bytes with a
  reset, which can destroy the answer before the client reads it.

At `max_connections` open, a new connection evicts the one that has waited longest for a head
it never sent (slowloris, idle sockets) or is lingering; keep-alive clients that did send
requests are never cut. Only if there is none does the new one get 503 and an immediate close.

Head bytes are bounded by h11's max_incomplete_event_size while a head trickles in and, here,
also for a head that arrives in one read (_StrictConnection): 431 and close. Protocol errors
are answered as JSON with h11's status (400, 431, 501) instead of uvicorn's plain-text 400.
A response's head and body leave in one send() (_Transport).
"""

from __future__ import annotations

import asyncio
import fcntl
import http
import json
import logging
import struct
import termios

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("edgepipe.serve")

REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_BUSY = b'{"error":"Too many open connections to the server; retry."}\n'
UNAVAILABLE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
               b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s"
               % (len(_BUSY), _BUSY))


EVICTION_PEEK = 32  # eviction candidates whose socket is checked for unread bytes


def _unread_bytes(raw) -> int:
    """Bytes the kernel holds for this socket that the server has not read yet."""
    try:
        answer = fcntl.ioctl(raw.get_extra_info("socket").fileno(), termios.FIONREAD, b"\0\0\0\0")
        return struct.unpack("i", answer)[0]
    except (OSError, AttributeError, ValueError):
        return 0


class _Transport:
    """The socket transport as uvicorn sees it. Writes made in one event-loop step leave in one
    send() (uvicorn writes a response's head and body separately); close() is decided by the
    protocol (it may linger)."""

    __slots__ = ("raw", "_loop", "_pending", "_protocol")

    def __init__(self, raw, loop, protocol: "HardenedH11Protocol"):
        self.raw = raw
        self._loop = loop
        self._pending: list[bytes] | None = None
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self.raw.is_closing():
            self.raw.write(b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._protocol.close_connection()

    def is_closing(self) -> bool:
        return self._protocol.lingering or self.raw.is_closing()

    def __getattr__(self, name):  # pause_reading, resume_reading, get_extra_info, abort, ...
        return getattr(self.raw, name)


class _StrictConnection(h11.Connection):
    """h11 enforces max_incomplete_event_size only while a head is incomplete: a head that
    arrives whole in one socket read (up to 256 KiB) passes. This also measures every parsed
    head, and keeps the last protocol error so the answer can carry its status."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self):
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as error:
            self.last_error = error
            raise
        if type(event) is h11.Request:
            size = len(event.method) + len(event.target) + 12 + sum(
                len(name) + len(value) + 4 for name, value in event.headers.raw_items())
            if size > self._max_incomplete_event_size:
                self.last_error = h11.RemoteProtocolError(
                    f"request head of {size} bytes; at most {self._max_incomplete_event_size}", 431)
                raise self.last_error
        return event


class HardenedH11Protocol(H11Protocol):
    head_timeout: float = 10.0
    body_timeout: float = 32.0
    linger_seconds: float = 2.0
    max_connections: int = 512
    metrics = None  # edgepipe.serving.metrics.Metrics, or None

    @classmethod
    def configure(cls, *, head_timeout: float, body_timeout: float, max_connections: int,
                  linger_seconds: float = 2.0, metrics=None) -> type["HardenedH11Protocol"]:
        """A subclass bound to these limits (for uvicorn.Config(http=...), which builds one
        protocol object per connection from the Config alone)."""
        return type("HardenedH11Protocol", (cls,), {
            "head_timeout": head_timeout, "body_timeout": body_timeout,
            "max_connections": max_connections, "linger_seconds": linger_seconds,
            "metrics": metrics})

    _timer: asyncio.TimerHandle | None = None
    _phase: str = ""
    _phase_since: float = 0.0
    _served: int = 0
    _refused: bool = False
    lingering: bool = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size or h11._connection.DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.conn = _StrictConnection(h11.SERVER, limit)

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers every protocol error with a text 400; keep h11's status and reason."""
        error = self.conn.last_error
        status = getattr(error, "error_status_hint", 400) if error else 400
        reason = str(error) if error and str(error) else msg
        body = json.dumps({"error": f"Invalid HTTP request: {reason}"}).encode()
        phrase = http.HTTPStatus(status).phrase.encode()
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s" % (status, phrase, len(body), body))
        self.transport.close()

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport) -> None:
        if len(self.connections) >= self.max_connections and not self._evict_one():
            self._refused = True
            transport.write(UNAVAILABLE)
            transport.close()
            if self.metrics:
                self.metrics.refused_connections.inc()
            return
        super().connection_made(_Transport(transport, self.loop, self))
        if self.metrics:
            self.metrics.open_connections.inc()
        self._sync_timer()

    def connection_lost(self, exc) -> None:
        if self._refused:
            return
        self._set_timer("", 0)
        if self.metrics:
            self.metrics.open_connections.dec()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a body nobody reads: dropped
        super().data_received(data)
        self._sync_timer()

    def on_response_complete(self) -> None:
        self._served += 1
        super().on_response_complete()
        self._sync_timer()

    def close_connection(self) -> None:
        """Close now, or, when the client is still sending a body nobody will read, shut the
        write side and read and drop the rest for at most linger_seconds."""
        raw = self.transport.raw
        if (self.lingering or raw.is_closing() or self.conn.their_state is not h11.SEND_BODY
                or not raw.can_write_eof()):
            raw.close()
            return
        self.lingering = True
        self._set_timer("linger", self.linger_seconds)
        raw.write_eof()
        raw.resume_reading()

    def _evict_one(self) -> bool:
        """At the cap, close the connection that has waited longest for a request head and
        never completed one (or holds part of one), or that lingers. A candidate with bytes
        waiting in its socket is passed over while another will do: that is most likely a
        client whose whole head arrived in the same burst of accepts, not yet read. Runs only
        when the cap is reached: O(connections)."""
        candidates = []
        for connection in self.connections:
            phase = getattr(connection, "_phase", "")
            if connection.transport.raw.is_closing():
                continue
            if phase == "linger" or (phase == "head" and (
                    not connection._served or connection.conn.trailing_data[0])):
                candidates.append((connection._phase_since, id(connection), connection))
        if not candidates:
            return False
        candidates.sort()
        chosen = next((connection for _, _, connection in candidates[:EVICTION_PEEK]
                       if not _unread_bytes(connection.transport.raw)), candidates[0][2])
        chosen._expired(chosen._phase, evicted=True)
        return True

    # ------------------------------------------------------------------ the timer
    def _sync_timer(self) -> None:
        if self.lingering:
            return
        if self.transport is None or self.transport.is_closing():
            self._set_timer("", 0)
            return
        theirs, ours = self.conn.their_state, self.conn.our_state
        if theirs is h11.IDLE and ours is h11.IDLE:
            self._set_timer("head", self.head_timeout)
        elif theirs is h11.SEND_BODY:
            self._set_timer("body", self.body_timeout)
        else:  # the app is working, or the connection is ending
            self._set_timer("", 0)

    def _set_timer(self, phase: str, seconds: float) -> None:
        if phase == self._phase:
            return  # keep the running deadline: bytes that trickle in do not extend it
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._phase = phase
        if phase:
            self._phase_since = self.loop.time()
            self._timer = self.loop.call_later(seconds, self._expired, phase)

    def _expired(self, phase: str, evicted: bool = False) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._phase = ""
        raw = self.transport.raw
        if raw.is_closing():
            return
        if phase == "linger":
            raw.close()
            return
        if self.metrics:
            self.metrics.timeouts.labels("evicted" if evicted else phase).inc()
        if phase == "head" and self.conn.trailing_data[0]:
            raw.write(REQUEST_TIMEOUT)  # part of a head came: say why
        log.debug("closing %s: no complete request %s in time", self.client, phase)
        raw.close()
