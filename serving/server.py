"""`edgepipe serve`: the registry's models over HTTP, compatible with TensorFlow Serving's REST API.

The HTTP server is uvicorn with its h11 parser (serving/http_protocol.py adds the head
deadline, the exact head-size limit, the connection cap and lingering close), one process,
one event loop; the API is the raw ASGI app in serving/app.py. Every limit is an option with
a safe default (docs/registry-and-serving.md says what each one stops).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from edgepipe.serving import auth
from edgepipe.serving.runtime import RUNTIMES

log = logging.getLogger("edgepipe.serve")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} is not a positive number")
        return value
    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser, registry_required: bool = True) -> None:
    add = parser.add_argument
    add("--registry", required=registry_required, help="registry folder the push stage writes")
    add("--model", action="append", default=[], help="serve only this model (repeatable); default: every model in the registry")
    add("--host", default="127.0.0.1", help="address to bind; 0.0.0.0 to accept other machines (default 127.0.0.1)")
    add("--port", type=int, default=8501, help="TCP port, 0 for any free one (default 8501, as TF Serving's REST port)")
    add("--runtime", choices=RUNTIMES, default="litert", help="litert (model.tflite, default) or saved_model (needs TensorFlow)")
    add("--workers", type=_positive(int), default=os.cpu_count() or 2, help="interpreters per model version and predict threads, i.e. examples predicted at once")
    add("--poll-seconds", type=_positive(float), default=2.0, help="how often the registry is checked for new versions")
    add("--keep-versions", type=_positive(int), default=1, help="how many latest versions stay loaded and reachable under /versions/<v>")
    add("--max-instances", type=_positive(int), default=64, help="most examples in one predict request")
    add("--api-key-file", help=f"require this file's content as API key on /v1/ (or: environment variable {auth.ENVIRONMENT}; not both); at least {auth.MIN_KEY_CHARACTERS} characters")
    limits = parser.add_argument_group("HTTP limits")
    add = limits.add_argument
    add("--max-body-bytes", type=_positive(int), default=4 << 20, help="largest request body (413 above; default 4 MiB)")
    add("--max-header-bytes", type=_positive(int), default=16 << 10, help="request line + headers (431 above; default 16 KiB)")
    add("--max-connections", type=_positive(int), default=512, help="open connections; at the cap a new one evicts the oldest that never sent a head, else gets 503 (default 512)")
    add("--head-timeout", type=_positive(float), default=10.0, help="seconds for a whole request head, however it trickles in (default 10)")
    add("--body-timeout", type=_positive(float), default=30.0, help="seconds for a whole request body, else 408 (default 30)")
    add("--keep-alive-timeout", type=_positive(int), default=5, help="seconds an idle keep-alive connection stays open (default 5)")
    add("--small-body-bytes", type=_positive(int), default=64 << 10, help="bodies up to this size are read without waiting for a slot (default 64 KiB)")
    add("--max-concurrent-bodies", type=_positive(int), default=8, help="larger or chunked bodies read at once (memory: this x --max-body-bytes; default 8)")
    add("--queue-timeout", type=_positive(float), default=10.0, help="seconds a larger body waits for a slot, else 503 (default 10)")
    add("--max-json-depth", type=_positive(int), default=16, help="deepest JSON nesting of a request body, else 400 (default 16)")
    add("--backlog", type=_positive(int), default=1024, help="listen backlog: connections the kernel queues before accept (default 1024)")
    add("--inline-invoke-below", type=float, default=0.0005, help="seconds: a predict whose measured time is below this runs on the event loop, else in a thread (default 0.0005; 0: always a thread)")


def serve(args: argparse.Namespace) -> int:
    try:
        api_key, key_source = auth.load_api_key(args.api_key_file)
    except auth.ApiKeyError as error:
        print(f"edgepipe serve: {error}", file=sys.stderr)
        return 2
    if not os.path.isdir(args.registry) and "://" not in args.registry:
        print(f"edgepipe serve: registry {args.registry} is not a folder; pass the [registry] path of a pipeline, or the pipeline config itself (edgepipe serve CONFIG).", file=sys.stderr)
        return 2
    try:
        listener = bind(args.host, args.port)
    except OSError as error:
        print(f"edgepipe serve: cannot listen on {args.host}:{args.port} ({error}); choose another --port or --host.", file=sys.stderr)
        return 2
    if not api_key and not auth.is_loopback(args.host):
        print(f"edgepipe serve: WARNING: listening on {args.host} without an API key: anyone who can reach "
              f"this address can call /v1/. Set --api-key-file FILE or {auth.ENVIRONMENT}.", file=sys.stderr)
    key_note = f"API key required (from {key_source})" if api_key else "no API key required"
    return _serve_on(args, listener, api_key, key_note)


def _serve_on(args: argparse.Namespace, listener: socket.socket, api_key: str, key_note: str) -> int:
    # Imported here: `edgepipe status` imports this module for its options only.
    from edgepipe.serving.app import App, default_versions
    from edgepipe.serving.bodies import BodyReader
    from edgepipe.serving.metrics import Metrics
    from edgepipe.serving.models import Models

    models = Models(args.registry, args.model, args.runtime, args.workers, args.keep_versions)
    metrics = Metrics(lambda: default_versions(models))
    app = App(models, BodyReader(_body_limits(args)), metrics, api_key=api_key,
              max_instances=args.max_instances, max_json_depth=args.max_json_depth,
              workers=args.workers, inline_invoke_below=args.inline_invoke_below)
    server = _uvicorn_server(args, app, metrics)
    host, port = listener.getsockname()[:2]

    def announce() -> None:
        print(f"edgepipe serve: listening on http://{host}:{port} (models "
              f"{sorted(models.served) or 'none yet'}, registry {args.registry}, runtime "
              f"{args.runtime}, {key_note})", flush=True)

    signal.signal(signal.SIGTERM, _raise_system_exit)
    models.refresh()
    models.poll(args.poll_seconds)
    try:
        asyncio.run(_run(server, listener, announce))
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        models.stop()
        app.executor.shutdown(wait=False, cancel_futures=True)
        listener.close()
        log.info("stopped")
    return 0


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (bound here, so a port in use is a clear startup error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host.strip("[]"), port))
    except OSError:
        listener.close()
        raise
    return listener


def _body_limits(args: argparse.Namespace):
    from edgepipe.serving.bodies import BodyLimits

    return BodyLimits(max_body_bytes=args.max_body_bytes, body_timeout=args.body_timeout,
                      small_body_bytes=args.small_body_bytes,
                      max_concurrent_bodies=args.max_concurrent_bodies,
                      queue_timeout=args.queue_timeout)


def _uvicorn_server(args: argparse.Namespace, app, metrics):
    import uvicorn

    from edgepipe.serving.http_protocol import HardenedH11Protocol

    protocol = HardenedH11Protocol.configure(
        head_timeout=args.head_timeout, body_timeout=args.body_timeout + 2,  # the app's 408 first
        max_connections=args.max_connections, metrics=metrics)
    config = uvicorn.Config(
        app, http=protocol, ws="none", lifespan="off", interface="asgi3", loop="asyncio",
        h11_max_incomplete_event_size=args.max_header_bytes,
        timeout_keep_alive=args.keep_alive_timeout, backlog=args.backlog,
        limit_concurrency=None,  # it counts idle sockets: the protocol caps connections instead
        timeout_graceful_shutdown=10,
        proxy_headers=False,  # no X-Forwarded-* trust: no client address is used
        server_header=False, date_header=True, access_log=False,
        log_config=None, log_level="error")  # a log line per refused request would let a flood fill the disk
    return uvicorn.Server(config)


async def _run(server, listener: socket.socket, announce) -> None:
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started and not task.done():
        await asyncio.sleep(0.01)
    if server.started:
        announce()
    await task


def _raise_system_exit(signum, frame) -> None:
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgepipe.serving", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    log.setLevel(logging.INFO)
    return serve(args)
