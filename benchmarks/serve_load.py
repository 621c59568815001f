"""Load test of `edgepipe serve` on loopback, against a bare LiteRT invoke measured in the same run.

    .venv/bin/python benchmarks/serve_load.py [--registry artifacts/registry] [--model NAME]

1. Baseline: the version's model.tflite on a bare interpreter in this process, batch 1, the
   same input quantized as the service does; only set_tensor + invoke + get_tensor are timed.
2. The real server process (`edgepipe serve`, port chosen by the OS, 127.0.0.1 only).
3. Overhead: one client, one keep-alive connection, one example per request; the p50 of the
   request latency minus the p50 of the bare invoke (target: under 1 ms). Also with a new
   connection per request (what urllib does).
4. Load: 16 concurrent clients, 2,000 requests in all, each client on its own keep-alive
   connection; throughput, p50/p99 latency and the failed requests. Stops by itself: after the
   2,000 requests or after --deadline seconds, whichever comes first.

The input is one random example of the model's input shape (seed 0).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import re
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgepipe.contracts import model_inputs  # noqa: E402
from edgepipe.contracts.litert import quantize_input  # noqa: E402
from edgepipe.contracts import registry  # noqa: E402


def example(model_json: dict) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = tuple(model_json["input_shape"])
    if model_json.get("input_dtype", "uint8") == "uint8":
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.normal(size=shape).astype(np.float32)


def bare_invoke_seconds(tflite: pathlib.Path, model_json: dict, value: np.ndarray, count: int) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite.read_bytes(), num_threads=1)
    interpreter.allocate_tensors()
    detail, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    batch = model_inputs.prepare(model_json, value[np.newaxis])
    if np.issubdtype(detail["dtype"], np.integer):
        batch = quantize_input(batch, np.dtype(detail["dtype"]), *detail["quantization"])
    seconds = np.empty(count)
    for index in range(-50, count):  # 50 untimed warm-up invokes
        started = time.perf_counter()
        interpreter.set_tensor(detail["index"], batch)
        interpreter.invoke()
        interpreter.get_tensor(output["index"])
        if index >= 0:
            seconds[index] = time.perf_counter() - started
    return seconds


def start_server(registry_dir: str, model: str, workers: int):
    process = subprocess.Popen(
        [sys.executable, "-m", "edgepipe", "serve", "--registry", registry_dir, "--model", model,
         "--port", "0", "--workers", str(workers)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    match = re.search(r"listening on http://([\d.]+):(\d+)", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("the server did not start; run it by hand to see why: edgepipe serve --registry ...")
    host, port = match[1], int(match[2])
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/readyz") as response:
                if response.status == 200:
                    return process, host, port
        except OSError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("the server never became ready")


def keep_alive_requests(host, port, path, body, count, deadline, latencies, failures) -> None:
    connection = http.client.HTTPConnection(host, port)
    headers = {"Content-Type": "application/json"}
    for _ in range(count):
        if time.monotonic() > deadline:
            break
        started = time.perf_counter()
        try:
            connection.request("POST", path, body, headers)
            response = connection.getresponse()
            answer = response.read()
            ok = response.status == 200 and b'"predictions"' in answer
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection(host, port)
            ok = False
        latencies.append(time.perf_counter() - started)
        if not ok:
            failures.append(1)
    connection.close()


def new_connection_requests(url, body, count) -> np.ndarray:
    seconds = []
    for _ in range(count):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        started = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            response.read()
        seconds.append(time.perf_counter() - started)
    return np.array(seconds)


def ms(values, q) -> float:
    return float(np.percentile(values, q) * 1000)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=str(REPO / "artifacts" / "registry"))
    parser.add_argument("--model", help="model name (default: the first in the registry)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="server interpreters (cores here)")
    parser.add_argument("--deadline", type=float, default=300.0, help="seconds before the load phase stops anyway")
    args = parser.parse_args()

    names = registry.model_names(args.registry)
    if not names:
        raise SystemExit(f"{args.registry} has no model: run `make run` first (it pushes to artifacts/registry).")
    name = args.model or names[0]
    version = registry.latest_version(args.registry, name)
    folder = pathlib.Path(registry.version_path(args.registry, name, version))
    model_json = json.loads((folder / "model.json").read_text())
    variant = registry.read_metadata(args.registry, name, version)["variant"]
    value = example(model_json)
    body = json.dumps({"instances": [value.tolist()]}).encode()
    print(f"load average before the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"model {name} v{version} ({variant} TFLite), input {list(value.shape)} {value.dtype}, "
          f"request body {len(body)} bytes")

    bare = bare_invoke_seconds(folder / "model.tflite", model_json, value, 2000)
    print(f"bare interpreter invoke (batch 1, in process): p50 {ms(bare, 50):.3f} ms  p99 {ms(bare, 99):.3f} ms")

    process, host, port = start_server(args.registry, name, args.workers)
    path = f"/v1/models/{name}:predict"
    try:
        serial: list[float] = []
        failures: list[int] = []
        keep_alive_requests(host, port, path, body, 500, time.monotonic() + args.deadline, serial, [])
        fresh = new_connection_requests(f"http://{host}:{port}{path}", body, 200)
        overhead = ms(serial, 50) - ms(bare, 50)
        print(f"one client, keep-alive:      p50 {ms(serial, 50):.3f} ms  p99 {ms(serial, 99):.3f} ms")
        print(f"one client, new connection:  p50 {ms(fresh, 50):.3f} ms  p99 {ms(fresh, 99):.3f} ms")
        print(f"service overhead over a bare invoke, p50: {overhead:.3f} ms (target < 1 ms: "
              f"{'met' if overhead < 1 else 'NOT met'})")

        latencies: list[float] = []
        per_client = [args.requests // args.clients + (index < args.requests % args.clients)
                      for index in range(args.clients)]
        deadline = time.monotonic() + args.deadline
        threads = [threading.Thread(target=keep_alive_requests,
                                    args=(host, port, path, body, count, deadline, latencies, failures))
                   for count in per_client]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        print(f"load: {args.clients} clients, {len(latencies)} requests in {wall:.2f} s: "
              f"{len(latencies) / wall:.0f} requests/s, p50 {ms(latencies, 50):.2f} ms, "
              f"p99 {ms(latencies, 99):.2f} ms, {len(failures)} failed")
        print(f"throughput vs bare single-thread invoke ({1 / np.median(bare):.0f}/s): "
              f"{len(latencies) / wall * np.median(bare):.2f}x")
    finally:
        process.terminate()
        process.wait()
    return 1 if failures or len(latencies) < args.requests else 0


if __name__ == "__main__":
    sys.exit(main())
