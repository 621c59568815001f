"""The header-flood and slow-connection attacks on `edgepipe serve`, with normal clients beside
them, on loopback; prints the server's peak RSS and the normal clients' p50/p99 and errors.

    nice -n 10 .venv/bin/python benchmarks/serve_attack.py [--registry artifacts/registry] [--model NAME]

The server runs with an API key and its default limits. Five normal clients run in a separate
process through every phase: 4 on keep-alive connections and 1 opening a new connection per
request (is a new client let in while the connection cap is reached?). The phases, each
bounded in time, run in order:

1. header flood: rounds of 150 connections x 98 headers of 60 kB (no key), for --flood-seconds;
2. slowloris: 1000 connections sending one header line every 2 s, held --slow-seconds;
3. idle: 1000 connections that send nothing, held --slow-seconds.

Targets (issue 17): peak RSS under 300 MB, 0 errors for the normal clients. The server is
killed if its RSS passes --kill-mb, so a server without bounds cannot eat the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
KEY = "attack-benchmark-key-0123456789"


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "Threads"):
                fields[name] = int(value.split()[0])
    return fields


class Monitor(threading.Thread):
    """Samples the server's RSS and threads every 20 ms; kills it past kill_mb."""

    def __init__(self, process: subprocess.Popen, kill_mb: float):
        super().__init__(daemon=True)
        self.process, self.kill_mb = process, kill_mb
        self.peak_threads, self.killed = 0, False
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.process.poll() is None:
            try:
                status = proc_status(self.process.pid)
            except OSError:
                break
            self.peak_threads = max(self.peak_threads, status["Threads"])
            if status["VmRSS"] / 1024 > self.kill_mb:
                self.killed = True
                self.process.kill()
            time.sleep(0.02)


def normal_clients(port: int, path: str, body: bytes, stop, out: str) -> None:
    """In its own process: 4 keep-alive clients and 1 new connection per request."""
    records, lock = [], threading.Lock()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"}

    def one(keep_alive: bool) -> None:
        connection = None
        while not stop.is_set():
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            started = time.perf_counter()
            try:
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                ok = response.status == 200 and b'"predictions"' in response.read()
                kind = "" if ok else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as error:
                ok, kind = False, type(error).__name__
            if not ok or not keep_alive:
                connection.close()
                connection = None
            with lock:
                records.append((time.perf_counter() - started, ok,
                                f"{kind} ({'keep-alive' if keep_alive else 'new connection'} client, "
                                f"{time.time():.1f})" if kind else ""))
            time.sleep(0.002 if keep_alive else 0.05)  # background traffic, not a load test

    threads = [threading.Thread(target=one, args=(index < 4,)) for index in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pathlib.Path(out).write_text(json.dumps(records))


async def header_flood(port: int, connections: int = 150, headers: int = 98, size: int = 60_000) -> int:
    """One round; returns how many connections the server cut before their head was sent."""
    line = b"X-Flood: " + b"a" * size + b"\r\n"

    async def one() -> bool:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        try:
            writer.write(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n")
            for _ in range(headers):
                writer.write(line)
                await writer.drain()
            writer.write(b"\r\n{}")
            await writer.drain()
            await asyncio.wait_for(reader.read(100), 30)
            return False
        except (OSError, asyncio.TimeoutError):
            return True
        finally:
            writer.close()

    return sum(await asyncio.gather(*(one() for _ in range(connections))))


async def slow_connections(port: int, connections: int, hold: float, trickle: bool) -> list[float]:
    """Seconds after which the server closed each connection (held at most `hold` s)."""
    started, closed = time.monotonic(), []

    async def one(index: int) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        try:
            if trickle:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            while time.monotonic() - started < hold:
                try:
                    if not await asyncio.wait_for(reader.read(1024), 2.0):
                        closed.append(time.monotonic() - started)
                        return
                except asyncio.TimeoutError:
                    pass
                if trickle:
                    writer.write(b"X-Slow-%d: x\r\n" % index)
                    await writer.drain()
        except OSError:
            closed.append(time.monotonic() - started)
        finally:
            writer.close()

    await asyncio.gather(*(one(index) for index in range(connections)))
    return closed


def start_server(registry_dir: str, model: str, key_file: str) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "edgepipe", "serve", "--registry", registry_dir, "--model", model,
         "--port", "0", "--workers", "2", "--api-key-file", key_file],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    match = re.search(r"listening on http://[\d.]+:(\d+)", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("the server did not start; run it by hand to see why")
    return process, int(match[1])


def run_phases(port: int, args) -> None:
    print(f"header flood from {time.time():.1f}")
    deadline = time.monotonic() + args.flood_seconds
    rounds = cut = 0
    while time.monotonic() < deadline:
        cut += asyncio.run(header_flood(port))
        rounds += 1
    print(f"header flood: {rounds} rounds of 150 connections x 98 x 60 kB headers in "
          f"{args.flood_seconds:g} s; {cut} connections cut by the server before their head was sent")
    for name, trickle in (("slowloris", True), ("idle", False)):
        print(f"{name} from {time.time():.1f}")
        closed = asyncio.run(slow_connections(port, 1000, args.slow_seconds, trickle))
        print(f"{name}: 1000 connections held up to {args.slow_seconds:g} s: {len(closed)} closed by "
              f"the server" + (f", after p50 {np.median(closed):.1f} s, max {max(closed):.1f} s" if closed else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=str(REPO / "artifacts" / "registry"))
    parser.add_argument("--model", help="model name (default: the first in the registry)")
    parser.add_argument("--flood-seconds", type=float, default=20.0)
    parser.add_argument("--slow-seconds", type=float, default=25.0)
    parser.add_argument("--kill-mb", type=float, default=2500.0)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from edgepipe.contracts import registry

    names = registry.model_names(args.registry)
    if not names:
        raise SystemExit(f"{args.registry} has no model: run `make run` first (it pushes to artifacts/registry).")
    name = args.model or names[0]
    version = pathlib.Path(registry.version_path(args.registry, name, registry.latest_version(args.registry, name)))
    shape = json.loads((version / "model.json").read_text())["input_shape"]
    body = json.dumps({"instances": [np.zeros(shape, dtype=np.uint8).tolist()]}).encode()
    with tempfile.TemporaryDirectory() as folder:
        key_file, out = os.path.join(folder, "key"), os.path.join(folder, "clients.json")
        pathlib.Path(key_file).write_text(KEY)
        process, port = start_server(args.registry, name, key_file)
        monitor = Monitor(process, args.kill_mb)
        monitor.start()
        idle_mb = proc_status(process.pid)["VmRSS"] / 1024
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        clients = context.Process(target=normal_clients, args=(port, f"/v1/models/{name}:predict", body, stop, out))
        clients.start()
        try:
            time.sleep(1)
            run_phases(port, args)
        finally:
            stop.set()
            clients.join()
            peak_mb = proc_status(process.pid)["VmHWM"] / 1024 if process.poll() is None else float("nan")
            monitor.stop.set()
            process.terminate()
            process.wait()
        records = json.loads(pathlib.Path(out).read_text())
    return report(idle_mb, peak_mb, monitor, records)


def report(idle_mb: float, peak_mb: float, monitor: Monitor, records: list) -> int:
    seconds = np.array([record[0] for record in records]) * 1000
    errors = [record[2] for record in records if not record[1]]
    print(f"server RSS: {idle_mb:.0f} MB idle, peak {peak_mb:.0f} MB (target < 300 MB: "
          f"{'met' if peak_mb < 300 else 'NOT met'}); peak threads {monitor.peak_threads}"
          + ("; KILLED at --kill-mb" if monitor.killed else ""))
    print(f"normal clients: {len(records)} requests, p50 {np.percentile(seconds, 50):.1f} ms, "
          f"p99 {np.percentile(seconds, 99):.1f} ms, max {seconds.max():.0f} ms, {len(errors)} errors"
          + (f": {errors}" if errors else "") + " (target: 0 errors)")
    print(f"load average after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return 0 if peak_mb < 300 and not errors and not monitor.killed else 1


if __name__ == "__main__":
    sys.exit(main())
