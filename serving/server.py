"""`edgepipe serve`: the registry's models over HTTP, compatible with TensorFlow Serving's REST API.

    GET  /v1/models/<name>[/versions/<v>]             version status
    GET  /v1/models/<name>[/versions/<v>]/metadata    signature and lineage
    POST /v1/models/<name>[/versions/<v>]:predict     {"instances": [...]} or {"inputs": ...}
    GET  /healthz, /readyz, /metrics                  liveness, readiness, Prometheus

Predict answers {"predictions": [[p, ...], ...]} for row requests and {"outputs": ...} for
columnar ones, as TF Serving does, plus "classes" and "confidences" (the most probable class
of each example) and "model_spec" (which version answered). Errors are {"error": "..."} with a
4xx status that says what was expected. The stdlib ThreadingHTTPServer keeps the overhead low
(benchmarks/serve_load.py measures it); HTTP/1.1 keep-alive and TCP_NODELAY avoid per-request
connection and Nagle delays.
"""

from __future__ import annotations

import argparse
import email.utils
import hmac
import http
import http.server
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse

from edgepipe.serving.metadata import metadata
from edgepipe.serving.metrics import Metrics
from edgepipe.serving.models import Models, NotFound
from edgepipe.serving.requests import SIGNATURE, RequestError, parse_body, parse_predict
from edgepipe.serving.runtime import RUNTIMES

log = logging.getLogger("edgepipe.serve")

MODEL_URL = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<verb>/metadata|:[a-z]+)?$"
)
DRAIN_LIMIT = 64 << 20  # a refused body up to this size is read and dropped, keeping the connection usable


class Service:
    """Everything a request handler needs; one per server."""

    def __init__(self, models: Models, api_key: str = "", max_body_bytes: int = 4 << 20,
                 max_instances: int = 64):
        self.models = models
        self.metrics = Metrics()
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.max_instances = max_instances
        self.in_flight = 0
        self._lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a client reuses its connection
    server_version = "edgepipe-serve"
    timeout = 60  # seconds an idle or slow connection may hold a thread

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def _handle(self, method: str) -> None:
        service: Service = self.server.service
        started = time.perf_counter()
        with service._lock:
            service.in_flight += 1
        labels = {"model": "", "version": "", "endpoint": "other", "examples": 0}
        try:
            status, payload = self._route(method, service, labels)
        except RequestError as error:
            status, payload = error.status, {"error": error.message}
        except NotFound as error:
            status, payload = 404, {"error": str(error)}
        except Exception as error:  # a bug must cost one request, never the process
            log.exception("internal error on %s %s", method, self.path)
            status, payload = 500, {"error": f"internal error: {type(error).__name__}: {error}"}
        try:
            if isinstance(payload, str):
                self._send(status, payload.encode(), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(status, json.dumps(payload, separators=(",", ":")).encode(), "application/json")
        finally:
            service.metrics.observe(labels["model"], labels["version"], labels["endpoint"], status,
                                    time.perf_counter() - started, labels["examples"])
            with service._lock:
                service.in_flight -= 1

    def _route(self, method: str, service: Service, labels: dict):
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        if path in ("/healthz", "/readyz", "/metrics"):
            labels["endpoint"] = path[1:]
            self._body(service, allowed=("GET",), method=method)
            if path == "/healthz":
                return 200, {"status": "alive"}
            if path == "/metrics":
                return 200, service.metrics.render(self._default_versions(service))
            ready = service.models.ready()
            return (200 if ready else 503), {"ready": ready, "models": self._default_versions(service)}
        match = MODEL_URL.match(path)
        if not match:
            self._body(service, allowed=(method,), method=method)
            raise RequestError(404, f"No endpoint {path}; expected /v1/models/<name>[/versions/<v>][/metadata|:predict], /healthz, /readyz or /metrics.")
        name, version_text, verb = match["name"], match["version"], match["verb"] or ""
        # Only known names become label values: arbitrary URLs must not grow the metrics.
        labels["model"] = name if name in service.models.states else "(unknown)"
        labels["endpoint"] = {"": "status", "/metadata": "metadata", ":predict": "predict"}.get(verb, "other")
        body = self._body(service, allowed=("POST",) if verb.startswith(":") else ("GET",), method=method)
        self._authorize(service)
        version = None
        if version_text is not None:
            if not version_text.isdigit():
                raise RequestError(400, f"Version {version_text!r} is not a version number; versions are integers 1, 2, 3...")
            version = int(version_text)
        if verb == "":
            return 200, {"model_version_status": service.models.status(name, version)}
        if verb != ":predict" and verb != "/metadata":
            raise RequestError(400, f"{verb[1:]!r} is not supported: this service answers :predict (classify and regress need tf.Example signatures).")
        model = service.models.get(name, version)
        labels["version"] = str(model.version)
        if verb == "/metadata":
            return 200, metadata(model)
        parsed = parse_predict(parse_body(body), model.spec, service.max_instances)
        probabilities = model.predict(parsed.values)
        labels["examples"] = len(parsed.values)
        best = probabilities.argmax(axis=1)
        return 200, {
            "outputs" if parsed.columnar else "predictions": probabilities.tolist(),
            "classes": [model.class_names[index] for index in best],
            "confidences": probabilities[range(len(best)), best].tolist(),
            "model_spec": {"name": model.name, "version": str(model.version), "signature_name": SIGNATURE},
        }

    def _body(self, service: Service, allowed: tuple[str, ...], method: str) -> bytes:
        """Read the body (always, so the connection stays in step) and check the method."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise RequestError(411, "Chunked bodies are not accepted: send a Content-Length header.")
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            if method == "POST" and method in allowed:
                self.close_connection = True
                raise RequestError(411, "A POST needs a Content-Length header.")
            length = 0
        elif not length_text.isdigit():
            self.close_connection = True
            raise RequestError(400, f"Content-Length {length_text!r} is not a number of bytes.")
        else:
            length = int(length_text)
        if length > service.max_body_bytes:
            if length <= DRAIN_LIMIT:
                self._drain(length)
            else:
                self.close_connection = True
            raise RequestError(413, f"The body has {length} bytes; at most {service.max_body_bytes} are accepted: send fewer instances per request.")
        body = self.rfile.read(length) if length else b""
        if method not in allowed:
            raise RequestError(405, f"{method} is not allowed here; use {' or '.join(allowed)}.")
        return body

    def _drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(length, 1 << 16))
            if not chunk:
                break
            length -= len(chunk)

    def _authorize(self, service: Service) -> None:
        if not service.api_key:
            return
        given = self.headers.get("X-API-Key") or ""
        authorization = self.headers.get("Authorization") or ""
        if authorization.lower().startswith("bearer "):
            given = authorization[7:].strip()
        if not hmac.compare_digest(given.encode(), service.api_key.encode()):
            raise RequestError(401, "Missing or wrong API key: send the header 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.")

    @staticmethod
    def _default_versions(service: Service) -> dict[str, int]:
        return {name: max(versions) for name, versions in service.models.served.items() if versions}

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        # Status line, headers and body in one write: one packet for small answers.
        reason = http.HTTPStatus(status).phrase
        head = (
            f"HTTP/1.1 {status} {reason}\r\nServer: {self.server_version}\r\n"
            f"Date: {email.utils.formatdate(usegmt=True)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if status == 401:
            head += 'WWW-Authenticate: Bearer realm="edgepipe"\r\n'
        if self.close_connection:
            head += "Connection: close\r\n"
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (bad request line, huge headers, unknown method), as JSON."""
        self.close_connection = True
        self._send(code, json.dumps({"error": message or http.HTTPStatus(code).phrase}).encode(), "application/json")

    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # bursts of new connections wait in the backlog, not in SYN retries

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("connection from %s ended: %s", client_address, error)
        else:
            super().handle_error(request, client_address)


def add_arguments(parser: argparse.ArgumentParser, registry_required: bool = True) -> None:
    parser.add_argument("--registry", required=registry_required, help="registry folder the push stage writes")
    parser.add_argument("--model", action="append", default=[], help="serve only this model (repeatable); default: every model in the registry")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 to accept other machines (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="TCP port, 0 for any free one (default 8501, as TF Serving's REST port)")
    parser.add_argument("--runtime", choices=RUNTIMES, default="litert", help="litert (model.tflite, default) or saved_model (needs TensorFlow)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="interpreters per model version, i.e. examples predicted at once")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="how often the registry is checked for new versions")
    parser.add_argument("--keep-versions", type=int, default=1, help="how many latest versions stay loaded and reachable under /versions/<v>")
    parser.add_argument("--max-instances", type=int, default=64, help="most examples in one predict request")
    parser.add_argument("--max-body-bytes", type=int, default=4 << 20, help="largest request body")
    parser.add_argument("--api-key-file", help="require this file's content as API key on /v1/ (also: environment variable EDGEPIPE_API_KEY)")


def serve(args: argparse.Namespace) -> int:
    api_key = os.environ.get("EDGEPIPE_API_KEY", "")
    if args.api_key_file:
        with open(args.api_key_file) as file:
            api_key = file.read().strip()
    if not os.path.isdir(args.registry) and "://" not in args.registry:
        print(f"edgepipe serve: registry {args.registry} is not a folder; pass the [registry] path of a pipeline, or the pipeline config itself (edgepipe serve CONFIG).", file=sys.stderr)
        return 2
    models = Models(args.registry, args.model, args.runtime, max(1, args.workers), args.keep_versions)
    server = Server((args.host, args.port), Handler)
    server.service = Service(models, api_key, args.max_body_bytes, args.max_instances)
    host, port = server.server_address[:2]
    signal.signal(signal.SIGTERM, _raise_system_exit)
    models.refresh()
    models.poll(args.poll_seconds)
    print(f"edgepipe serve: listening on http://{host}:{port} (models {sorted(models.served) or 'none yet'}, "
          f"registry {args.registry}, runtime {args.runtime}{', API key required' if api_key else ''})", flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        models.stop()
        deadline = time.monotonic() + 10
        while server.service.in_flight and time.monotonic() < deadline:
            time.sleep(0.05)  # let requests under way finish
        server.server_close()
        log.info("stopped")
    return 0


def _raise_system_exit(signum, frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.serving", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    return serve(args)
