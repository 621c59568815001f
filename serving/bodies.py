"""Reading a request body through ASGI, within the body limits.

- Content-Length above max_body_bytes is 413 at once; a chunked body is counted while it
  streams and cut at the same limit. Both end with Connection: close (the rest is not read).
- Transfer-Encoding together with Content-Length is refused (400, close): h11 would let
  Transfer-Encoding win, a proxy in front might not (request smuggling).
- The whole body must arrive within body_timeout seconds (a body shorter than its
  Content-Length, or trickled): 408 and close.
- Bodies up to small_body_bytes (a 28x28 image request is 5 KB) are read at once: their memory
  is bounded by max_connections. A larger or chunked body needs one of max_concurrent_bodies
  slots (memory bound: slots x max_body_bytes), waiting up to queue_timeout, then 503. So slow
  senders of big bodies cannot delay ordinary requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses


class Refusal(Exception):
    """An HTTP answer decided before a handler could answer: status, message, extra headers
    and whether the connection closes after it."""

    def __init__(self, status: int, message: str, headers=(), close: bool = False):
        super().__init__(message)
        self.status, self.message, self.headers, self.close = status, message, list(headers), close


@dataclasses.dataclass
class BodyLimits:
    max_body_bytes: int = 4 << 20
    body_timeout: float = 30.0
    small_body_bytes: int = 64 << 10
    max_concurrent_bodies: int = 8
    queue_timeout: float = 10.0


def content_length(scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value)  # h11 checked it: 1-20 ASCII digits, no conflicting duplicate
    return None


def has_body(scope) -> bool:
    for key, value in scope["headers"]:
        if key == b"transfer-encoding" or (key == b"content-length" and value != b"0"):
            return True
    return False


def _too_large(limits: BodyLimits, length) -> Refusal:
    return Refusal(413, f"The body has {length} bytes; at most {limits.max_body_bytes} are accepted: "
                   "send fewer instances per request.", close=True)


class BodyReader:
    def __init__(self, limits: BodyLimits):
        self.limits = limits
        self._slots: asyncio.Semaphore | None = None  # made on the server's event loop

    @contextlib.asynccontextmanager
    async def slot(self, scope):
        """Nothing for a small body; one of max_concurrent_bodies slots for a larger one."""
        length = content_length(scope)
        if length is not None and length > self.limits.max_body_bytes:  # before any wait
            raise _too_large(self.limits, length)
        if length is not None and length <= self.limits.small_body_bytes:
            yield
            return
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.max_concurrent_bodies)
        if self._slots.locked():  # wait_for costs a task: only when there is a queue
            try:
                await asyncio.wait_for(self._slots.acquire(), self.limits.queue_timeout)
            except asyncio.TimeoutError:
                raise Refusal(503, "The server is busy: too many large request bodies are being "
                              "read; retry later.", [(b"retry-after", b"1")], close=True) from None
        else:
            await self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    async def read(self, scope, receive) -> bytes:
        length, chunked = None, False
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                chunked = True
        if chunked and length is not None:
            raise Refusal(400, "Content-Length and Transfer-Encoding together are refused: send one.",
                          close=True)
        if length is None and not chunked:
            raise Refusal(411, "A POST needs a body with a Content-Length header (or a chunked "
                          "Transfer-Encoding).", close=True)
        if length is not None and length > self.limits.max_body_bytes:
            raise _too_large(self.limits, length)
        chunks: list[bytes] = []
        try:
            if hasattr(asyncio, "timeout"):  # Python 3.11+: no task per request
                async with asyncio.timeout(self.limits.body_timeout):
                    await self._receive_all(receive, chunks)
            else:
                await asyncio.wait_for(self._receive_all(receive, chunks), self.limits.body_timeout)
        except (TimeoutError, asyncio.TimeoutError):
            size = sum(map(len, chunks))
            raise Refusal(408, f"The body did not arrive within {self.limits.body_timeout:g} s "
                          f"({size} of {length if length is not None else 'a chunked body of ?'} "
                          "bytes came): send the whole body at once.", close=True) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _receive_all(self, receive, chunks: list[bytes]) -> None:
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refusal(400, "The client went away before sending its body.", close=True)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limits.max_body_bytes:
                raise _too_large(self.limits, f"more than {self.limits.max_body_bytes}")
            chunks.append(chunk)
            more = message.get("more_body", False)
