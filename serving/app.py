"""The TF-Serving REST API as a raw ASGI app (five endpoints need no framework).

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signature and lineage
    POST /v1/models/<name>[/versions/<v>]:predict     {"instances": [...]} or {"inputs": ...}
    POST /v1/models/<name>[/versions/<v>]:generate    text generators: {"prompt", "length",
                                                      "temperature", "seed"} -> {"text", ...}
    GET  /healthz, /readyz, /metrics                  liveness, readiness, Prometheus

Predict answers {"predictions": [[p, ...], ...]} for row requests and {"outputs": ...} for
columnar ones, as TF Serving does, plus "classes" and "confidences" (the most probable class
of each example) and "model_spec" (which version answered). Errors are {"error": "..."} with a
4xx status that says what was expected.

HTTP rules enforced here (uvicorn + h11 and serving/http_protocol.py already refuse malformed
heads, bad or conflicting Content-Length and oversized heads):
- HEAD is answered as GET without a body (uvicorn drops the body, keeps Content-Length);
  OPTIONS is 204 with Allow; any other wrong method is 405 with Allow.
- The API key is checked from the head, before one body byte is read.
- A body left unread (a refusal before it was needed) closes the connection after the answer.
- Body limits: serving/bodies.py. JSON limits: serving/requests.py parse_body.
- Predict runs on the event loop when the version's measured invoke is tiny (it costs less than
  a thread hop), else in a pool of `workers` threads (LiteRT releases the GIL in invoke).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import json
import logging
import re
import time

from edgepipe.serving import answers, generation
from edgepipe.serving.bodies import BodyReader, Refusal, has_body
from edgepipe.serving.metadata import metadata
from edgepipe.serving.metrics import Metrics
from edgepipe.serving.models import Models, NotFound
from edgepipe.serving.requests import (SIGNATURE, RequestError, parse_body, parse_predict,
                                       parse_wav)

log = logging.getLogger("edgepipe.serve")

MODEL_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<verb>/metadata|:[a-z]+)?$"
)
# TF Serving's version labels, which are assigned in its model config file: not supported.
LABEL_URL = re.compile(r"^/v1/models/[^/:]+/labels/")
ENDPOINTS = {"": "status", "/metadata": "metadata", ":predict": "predict",
             ":generate": "generate"}
PROBES = ("/healthz", "/readyz", "/metrics")
JSON = b"application/json"
CLOSE = (b"connection", b"close")
OFFLOAD_PARSE_ABOVE = 256 << 10  # bytes: a bigger body is parsed in the pool, not on the loop


def default_versions(models: Models) -> dict[str, int]:
    """The version of each model that answers requests naming no version."""
    return {name: max(versions) for name, versions in models.served.items() if versions}


class App:
    def __init__(self, models: Models, bodies: BodyReader, metrics: Metrics, *, api_key: str = "",
                 max_instances: int = 64, max_json_depth: int = 16, workers: int = 2,
                 inline_invoke_below: float = 0.0005):
        self.models = models
        self.bodies = bodies
        self.metrics = metrics
        self.api_key = api_key.encode()
        self.max_instances = max_instances
        self.max_json_depth = max_json_depth
        self.inline_invoke_below = inline_invoke_below
        self.executor = concurrent.futures.ThreadPoolExecutor(max(1, workers), "predict")
        self.logged_failures: set[tuple] = set()  # where internal errors were logged in full

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":  # no lifespan (models load before serving), no websockets
            return
        started = time.perf_counter()
        labels = {"model": "", "version": "", "endpoint": "other", "examples": 0, "body_read": False}
        status, payload, headers, close = await self._answer(scope, receive, labels)
        if status == 204:
            body = b""
        else:
            if isinstance(payload, tuple):  # (bytes, content type): /metrics
                body, content_type = payload[0], payload[1].encode()
            else:
                body, content_type = json.dumps(payload, separators=(",", ":")).encode(), JSON
            headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()),
                       *headers]
        if close or (not labels["body_read"] and has_body(scope)):
            headers.append(CLOSE)  # a body left unread is never drained into a next request
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe(labels["model"], labels["version"], labels["endpoint"], status,
                             time.perf_counter() - started, labels["examples"])

    async def _answer(self, scope, receive, labels) -> tuple[int, object, list, bool]:
        """(status, payload, extra headers, close) of one request; never raises."""
        try:
            status, payload = await self._route(scope, receive, labels)
            return status, payload, [], False
        except Refusal as refusal:
            return refusal.status, {"error": refusal.message}, refusal.headers, refusal.close
        except RequestError as error:
            return error.status, {"error": error.message}, [], False
        except NotFound as error:
            return 404, {"error": str(error)}, [], False
        except Exception as error:  # a bug costs one request, never the process
            self._log_internal_error(scope, error)
            # The reply never echoes the exception: its text may hold paths or data.
            return 500, {"error": "internal error: the request could not be answered; the "
                         "server log has the details"}, [], False

    def _log_internal_error(self, scope, error: Exception) -> None:
        """One line per failed request; the traceback only the first time a failure of this
        type happens at this place, so a client repeating a request cannot flood the log."""
        frame = error.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        where = (type(error).__name__, frame.tb_frame.f_code.co_filename, frame.tb_lineno) \
            if frame else (type(error).__name__,)
        if where in self.logged_failures or len(self.logged_failures) >= 100:
            log.error("internal error on %s %s: %s: %s", scope["method"], scope["path"][:200],
                      type(error).__name__, str(error)[:200])
            return
        self.logged_failures.add(where)
        log.exception("internal error on %s %s (traceback shown once per place)",
                      scope["method"], scope["path"][:200])

    async def _route(self, scope, receive, labels):
        path = scope["path"]
        if path in PROBES:
            labels["endpoint"] = path[1:]
            _check_method(scope, ("GET", "HEAD"))
            return self._probe(path)
        match = MODEL_URL.match(path)
        if not match and LABEL_URL.match(path):
            raise Refusal(404, "Version labels (/v1/models/<name>/labels/<label>) are not "
                          "supported: this server has no model config file to assign them. Use "
                          "/v1/models/<name>/versions/<v>, or no version for the newest.")
        if not match:
            if path == "*" and scope["method"] == "OPTIONS":  # OPTIONS * HTTP/1.1: the server's
                raise Refusal(204, "", [(b"allow", b"GET, HEAD, POST, OPTIONS")])
            raise Refusal(404, f"No endpoint {path[:200]}; expected /v1/models/<name>[/versions/<v>]"
                          "[/metadata|:predict], /healthz, /readyz or /metrics.")
        name, version_text, verb = match["name"], match["version"], match["verb"] or ""
        # Only known names become label values: arbitrary URLs must not grow the metrics.
        labels["model"] = name if name in self.models.states else "(unknown)"
        labels["endpoint"] = ENDPOINTS.get(verb, "other")
        _check_method(scope, ("POST",) if verb.startswith(":") else ("GET", "HEAD"))
        self._authorize(scope)  # from the head: no body byte is read for a wrong key
        version = _version_number(version_text)
        if verb == "":
            return 200, {"model_version_status": self.models.status(name, version)}
        if verb not in (":predict", "/metadata", ":generate"):
            raise RequestError(400, f"{verb[1:]!r} is not supported: this service answers :predict "
                               "and, for text generators, :generate (classify and regress need "
                               "tf.Example signatures).")
        model = self.models.get(name, version)
        labels["version"] = str(model.version)
        if verb == "/metadata":
            return 200, metadata(model)
        writes = hasattr(model.runtime, "generate")
        if (verb == ":generate") != writes:
            raise RequestError(400, f"model {name!r} is a {model.task.name} model: send "
                               f"{':generate' if writes else ':predict'} requests to it.")
        if writes:
            return 200, await self._generate(scope, receive, model, labels)
        return 200, await self._predict(scope, receive, model, labels)

    def _probe(self, path: str):
        if path == "/healthz":
            return 200, {"status": "alive"}
        if path == "/metrics":
            return 200, self.metrics.render()
        ready = self.models.ready()
        return (200 if ready else 503), {"ready": ready, "models": default_versions(self.models)}

    def _authorize(self, scope) -> None:
        if not self.api_key:
            return
        given = b""
        for key, value in scope["headers"]:
            if key == b"authorization" and value[:7].lower() == b"bearer ":
                given = value[7:].strip()
                break
            if key == b"x-api-key" and not given:
                given = value.strip()
        if not hmac.compare_digest(given, self.api_key):
            raise Refusal(401, "Missing or wrong API key: send the header 'Authorization: Bearer <key>' "
                          "or 'X-API-Key: <key>'.", [(b"www-authenticate", b'Bearer realm="edgepipe"')])

    async def _predict(self, scope, receive, model, labels) -> dict:
        async with self.bodies.slot(scope):
            body = await self.bodies.read(scope, receive)
            labels["body_read"] = True
            if len(body) > OFFLOAD_PARSE_ABOVE:  # a big parse must not stall the loop
                parsed = await asyncio.get_running_loop().run_in_executor(
                    self.executor, self._parse, body, model)
            else:
                parsed = self._parse(body, model)
        outputs = await self._run(model, parsed.values)
        labels["examples"] = len(parsed.values)
        return {
            **answers.answer(model.task.name, outputs, model.class_names, parsed.columnar,
                             parsed.letterboxes),
            "model_spec": {"name": model.name, "version": str(model.version), "signature_name": SIGNATURE},
        }

    async def _generate(self, scope, receive, model, labels) -> dict:
        async with self.bodies.slot(scope):
            body = await self.bodies.read(scope, receive)
            labels["body_read"] = True
        request = generation.parse_generate(parse_body(body, self.max_json_depth))
        answer = await asyncio.get_running_loop().run_in_executor(
            self.executor, model.runtime.generate, request)
        return {**answer, "model_spec": {"name": model.name, "version": str(model.version),
                                         "signature_name": "step"}}

    def _parse(self, body: bytes, model):
        if body[:4] == b"RIFF":  # an audio model's clip as a WAV file
            return parse_wav(body, model.spec)
        return parse_predict(parse_body(body, self.max_json_depth), model.spec, self.max_instances)

    async def _run(self, model, values):
        """On the loop when the whole batch costs less than a thread hop and an interpreter is
        free (the loop must never wait for one), else in the pool."""
        pool = getattr(model.runtime, "pool", None)
        if model.invoke_seconds * len(values) < self.inline_invoke_below and not (pool and pool.empty()):
            return model.predict(values)
        return await asyncio.get_running_loop().run_in_executor(self.executor, model.predict, values)


def _check_method(scope, allowed: tuple[str, ...]) -> None:
    """204 for OPTIONS, 405 for a method not allowed; a GET or HEAD carries no body."""
    method = scope["method"]
    allow = [(b"allow", ", ".join((*allowed, "OPTIONS")).encode())]
    if method == "OPTIONS":
        raise Refusal(204, "", allow)
    if method not in allowed:
        raise Refusal(405, f"{method} is not allowed here; use {' or '.join(allowed)}.", allow)
    if method in ("GET", "HEAD") and has_body(scope):
        raise Refusal(400, f"A {method} request carries no body.", close=True)


def _version_number(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise RequestError(400, f"Version {text[:40]!r} is not a version number; versions are "
                           "integers 1, 2, 3...")
    return int(text)
