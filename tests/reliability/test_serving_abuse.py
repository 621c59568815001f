"""The model server tried as an attacker and as a careless operator would (issue 17), on
loopback, each attack a bounded loop. Every test names what the old http.server-based server
did ("Before:"); each of those failed against it."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from edgepipe.contracts import registry
from tests.conftest import REPO
from tests.serving.conftest import STARTUP_LIMIT_SECONDS, call, pushed_registry, serve  # noqa: F401

PREDICT = "/v1/models/tests:predict"
IMAGE = [[[0]] * 28] * 28
KEY = "reliability-key-0123456789"
# Short deadlines so the slow cases take about a second each.
FAST = ("--head-timeout", "1", "--body-timeout", "1", "--keep-alive-timeout", "1")


@pytest.fixture(scope="module")
def server(pushed_registry, tmp_path_factory):  # noqa: F811
    log = tmp_path_factory.mktemp("abuse-log") / "serve.log"
    with serve(pushed_registry, *FAST, "--max-connections", "64", "--workers", "2",
               env={"EDGEPIPE_API_KEY": KEY}, log_path=log) as (base, process):
        yield base, process


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def exchange(base: str, data: bytes, read_seconds: float = 20.0) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one raw request; status 0 when the server closed without an
    answer. The socket timeout only bounds the test: no case here should need it."""
    with socket.create_connection(("127.0.0.1", port_of(base)), timeout=read_seconds) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
                head, separator, rest = received.partition(b"\r\n\r\n")
                length = re.search(rb"(?im)^content-length: *(\d+)", head)
                if separator and (data.startswith(b"HEAD") or b" 204 " in head.split(b"\r\n")[0]
                                  or (length and len(rest) >= int(length[1]))):
                    break
        except ConnectionResetError:
            pass
    if not received:
        return 0, {}, b""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in
               (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def post(body: bytes, *extra: bytes, key: str = KEY, path: str = PREDICT) -> bytes:
    lines = [f"POST {path} HTTP/1.1".encode(), b"Host: x", b"Content-Type: application/json",
             f"Authorization: Bearer {key}".encode(), *extra]
    if not any(line.lower().startswith((b"content-length", b"transfer-encoding")) for line in extra):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) in kB and Threads of a process, from /proc."""
    fields = {}
    for line in open(f"/proc/{pid}/status"):
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM", "Threads"):
            fields[name] = int(value.split()[0])
    return fields


def flood_one(port: int, headers: int, header_bytes: int, all_sent: threading.Barrier) -> None:
    """One connection sending `headers` headers of `header_bytes` each, without a key; the
    head is finished only once every connection has sent its headers (or been cut), so the
    server holds them all at once if it keeps them."""
    line = b"X-Flood: " + b"a" * header_bytes + b"\r\n"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            try:
                sock.sendall(b"POST " + PREDICT.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n")
                for _ in range(headers):
                    sock.sendall(line)
            finally:
                all_sent.wait()
            sock.sendall(b"\r\n{}")
            sock.recv(1024)
    except OSError:
        pass  # the server cut the connection: what it should do


def test_header_flood_keeps_memory_bounded(pushed_registry, tmp_path):  # noqa: F811
    """150 connections x 98 headers of 60 kB, no key, all at once. Before: the server read
    every header of every connection (a thread each) before checking the key: 67 MB -> 3.5 GB."""
    with serve(pushed_registry, env={"EDGEPIPE_API_KEY": KEY}, log_path=tmp_path / "log") as (base, process):
        before = proc_status(process.pid)["VmRSS"]
        all_sent = threading.Barrier(150, timeout=STARTUP_LIMIT_SECONDS)
        threads = [threading.Thread(target=flood_one, args=(port_of(base), 98, 60_000, all_sent))
                   for _ in range(150)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = proc_status(process.pid)["VmHWM"]
        assert call(base, "GET", "/healthz") == (200, {"status": "alive"})
    assert (peak - before) / 1024 < 100, f"RSS {before / 1024:.0f} MB -> peak {peak / 1024:.0f} MB"


def test_slow_connections_are_closed_by_the_head_deadline(server):
    """Slowloris: 40 connections sending one header line every 0.2 s never finish their head,
    and 10 more send nothing. Before: no deadline (each held a thread for as long as bytes kept
    coming, an idle one for 60 s)."""
    base, process = server
    idle = [socket.create_connection(("127.0.0.1", port_of(base)), timeout=10) for _ in range(10)]
    sockets = [socket.create_connection(("127.0.0.1", port_of(base)), timeout=10) for _ in range(40)]
    for sock in sockets:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    closed, answers = set(), []
    for _ in range(50):  # 10 s of trickling at most; the deadline is 1 s
        for index, sock in enumerate(sockets):
            if index in closed:
                continue
            try:
                sock.sendall(b"X-Slow: b\r\n")
            except OSError:
                closed.add(index)
        if len(closed) == len(sockets):
            break
        time.sleep(0.2)
    for sock in sockets:
        try:
            answers.append(sock.recv(100))
        except OSError:
            answers.append(b"")
        sock.close()
    assert len(closed) == len(sockets)
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408") for answer in answers)
    for sock in idle:  # closed by the same deadline, silently (nothing came)
        assert sock.recv(100) == b""
        sock.close()
    assert proc_status(process.pid)["Threads"] < 20  # no thread per connection
    assert call(base, "GET", "/healthz")[0] == 200


@pytest.mark.parametrize("header", [
    b"Content-Length: \xb2", "Content-Length: \u00b2".encode(), b"Content-Length: " + b"9" * 5000,
    b"Content-Length: 2\r\nContent-Length: 40", b"Content-Length: -1",
], ids=["superscript-latin1", "superscript-utf8", "5000-digits", "two-different", "negative"])
def test_bad_or_duplicate_content_length_is_400(server, header):
    """Before: 500 for "²" and for 5,000 digits; two different lengths were accepted (request
    smuggling behind a proxy)."""
    base, process = server
    status, headers, body = exchange(base, post(b"{}", header))
    assert status == 400 and headers.get("connection") == "close"
    assert json.loads(body)["error"]
    assert process.poll() is None


def test_content_length_with_transfer_encoding_is_refused_and_chunked_alone_accepted(server):
    """h11 would let Transfer-Encoding win, a proxy in front might not. Before: 411 for both
    (chunked bodies were refused)."""
    base, _ = server
    status, headers, _ = exchange(base, post(b"0\r\n\r\n", b"Content-Length: 5", b"Transfer-Encoding: chunked"))
    assert status == 400 and headers.get("connection") == "close"
    body = json.dumps({"instances": [IMAGE]}).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    status, _, answer = exchange(base, post(chunked, b"Transfer-Encoding: chunked"))
    assert status == 200 and json.loads(answer)["model_spec"]["version"] == "1"


def test_a_head_over_the_limit_is_431_even_in_one_read(server):
    """h11 bounds a head only while it is incomplete; a 20 kB header in one read passed."""
    base, _ = server
    status, headers, body = exchange(base, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    assert status == 431 and headers.get("connection") == "close" and json.loads(body)["error"]


def test_the_api_key_is_checked_before_the_body_is_read(server):
    """A wrong key with a 1 MB body announced and none sent: 401 at once, not a 408 after
    waiting for the body."""
    base, _ = server
    status, headers, _ = exchange(base, post(b"", b"Content-Length: 1000000", key="wrong-key-wrong-key"))
    assert status == 401 and headers.get("connection") == "close"


def test_a_refused_body_does_not_lose_the_answer(server):
    """5 MB sent at once against --max-body-bytes 4 MiB: the 413 arrives (the server reads and
    drops the rest instead of resetting the connection under it)."""
    base, _ = server
    body = b'{"instances": [], "pad": "' + b"x" * (5 << 20) + b'"}'
    status, headers, answer = exchange(base, post(body))
    assert status == 413 and "at most 4194304" in json.loads(answer)["error"]


def test_at_the_connection_cap_idle_sockets_make_room(server):
    """70 idle sockets against --max-connections 64: a new client still gets in. Before: a
    thread per connection, no cap."""
    base, _ = server
    idle = [socket.create_connection(("127.0.0.1", port_of(base))) for _ in range(70)]
    try:
        status, answer = call(base, "POST", PREDICT, {"instances": [IMAGE]}, {"X-API-Key": KEY})
        assert status == 200
    finally:
        for sock in idle:
            sock.close()


def test_head_is_answered_without_a_body(server):
    """Before: 501 with a body."""
    base, _ = server
    status, headers, body = exchange(base, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and int(headers["content-length"]) > 0 and body == b""
    status, headers, body = exchange(
        base, f"HEAD /v1/models/tests HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n".encode())
    assert status == 200 and body == b""


def test_options_is_204_with_allow(server):
    """Before: 501."""
    base, _ = server
    status, headers, body = exchange(base, f"OPTIONS {PREDICT} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (status, headers["allow"], body) == (204, "POST, OPTIONS", b"")
    status, headers, _ = exchange(base, b"OPTIONS /v1/models/tests/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, headers["allow"]) == (204, "GET, HEAD, OPTIONS")


def test_a_body_shorter_than_its_length_gets_408_after_the_body_timeout(server):
    """10 of 100 bytes, then silence; --body-timeout 1. Before: the server waited 60 s, then
    answered 500."""
    base, _ = server
    started = time.monotonic()
    status, headers, body = exchange(base, post(b'{"instances', b"Content-Length: 100"))
    assert status == 408 and headers.get("connection") == "close"
    assert "did not arrive within 1 s" in json.loads(body)["error"]
    assert time.monotonic() - started < 30  # well before the old 60 s


def test_deeply_nested_json_is_400(server):
    """100,000 nested lists. Before: 500 RecursionError."""
    base, process = server
    for body in (b"[" * 100_000 + b"]" * 100_000,
                 b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"):
        status, _, answer = exchange(base, post(body))
        assert status == 400 and "nests 100" in json.loads(answer)["error"]
    assert process.poll() is None


def test_true_inside_an_image_is_400(server):
    """Before: read as 1 and predicted (200)."""
    base, _ = server
    image = json.loads(json.dumps(IMAGE))
    image[3][4] = [True]
    status, answer = call(base, "POST", PREDICT, {"instances": [image]}, {"X-API-Key": KEY})
    assert status == 400 and "literal true" in answer["error"]
    # The same words inside a string (a text model's raw text) are not literals.
    status, answer = call(base, "POST", PREDICT, {"instances": ["true [[[ false"]}, {"X-API-Key": KEY})
    assert status == 400 and "literal" not in answer["error"]


def start_failure(registry_dir, *arguments: str, env: dict | None = None) -> tuple[int, str, str]:
    environment = {key: value for key, value in os.environ.items() if key != "EDGEPIPE_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "edgepipe", "serve", "--registry", str(registry_dir), "--port", "0",
         *arguments], cwd=REPO, capture_output=True, text=True, env={**environment, **(env or {})},
        timeout=STARTUP_LIMIT_SECONDS)
    return result.returncode, result.stdout, result.stderr


def test_unusable_api_keys_are_startup_errors(pushed_registry, tmp_path):  # noqa: F811
    """Before: an empty --api-key-file turned authentication off, even with EDGEPIPE_API_KEY set."""
    empty, short, good = tmp_path / "empty.key", tmp_path / "short.key", tmp_path / "good.key"
    empty.write_text("\n")
    short.write_text("s3cret\n")
    good.write_text(KEY + "\n")
    cases = [
        ((str(empty),), {}, [str(empty), "empty"]),
        ((str(empty),), {"EDGEPIPE_API_KEY": KEY}, [str(empty), "EDGEPIPE_API_KEY", "only one"]),
        ((str(short),), {}, [str(short), "6 characters", "at least 16"]),
        ((str(tmp_path / "missing.key"),), {}, ["missing.key", "cannot be read"]),
        ((str(tmp_path),), {}, [str(tmp_path), "cannot be read"]),
        ((str(good),), {"EDGEPIPE_API_KEY": KEY}, ["only one"]),
        ((), {"EDGEPIPE_API_KEY": "short"}, ["EDGEPIPE_API_KEY", "at least 16"]),
        ((), {"EDGEPIPE_API_KEY": ""}, ["EDGEPIPE_API_KEY", "empty"]),
    ]
    for files, env, words in cases:
        options = ("--api-key-file", *files) if files else ()
        status, stdout, stderr = start_failure(pushed_registry, *options, env=env)
        assert status == 2 and "listening" not in stdout, (files, env, stderr)
        assert all(word in stderr for word in words), (files, env, stderr)


def test_startup_line_says_whether_a_key_is_required(pushed_registry, tmp_path):  # noqa: F811
    key_file = tmp_path / "key"
    key_file.write_text(KEY)
    for arguments, words in (((), "no API key required"),
                             (("--api-key-file", str(key_file)), f"API key required (from {key_file})")):
        process = subprocess.Popen(
            [sys.executable, "-m", "edgepipe", "serve", "--registry", str(pushed_registry),
             "--port", "0", *arguments], cwd=REPO, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True,
            env={key: value for key, value in os.environ.items() if key != "EDGEPIPE_API_KEY"})
        try:
            assert words in process.stdout.readline()
        finally:
            process.terminate()
            process.wait()


def test_binding_beyond_loopback_without_a_key_warns(pushed_registry):  # noqa: F811
    """Before: no word about it. The process is stopped as soon as the warning is out (before
    the models load, so it never accepts a connection)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "edgepipe", "serve", "--registry", str(pushed_registry),
         "--host", "0.0.0.0", "--port", "0"], cwd=REPO, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True,
        env={key: value for key, value in os.environ.items() if key != "EDGEPIPE_API_KEY"})
    try:
        line = process.stderr.readline()
    finally:
        process.terminate()
        process.wait()
    assert "WARNING" in line and "0.0.0.0 without an API key" in line


def test_metrics_come_from_prometheus_client_with_its_standard_collectors(server):
    """Before: a hand-written text format without process or Python series."""
    base, _ = server
    status, text = call(base, "GET", "/metrics")
    assert status == 200
    for series in ("process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total",
                   "python_gc_objects_collected_total", "python_info", "edgepipe_requests_total",
                   "edgepipe_open_connections", "edgepipe_connection_timeouts_total"):
        assert re.search(rf"(?m)^{series}[{{ ]", text), series


def wait_for_state(base: str, version: str, state: str) -> dict:
    deadline = time.monotonic() + STARTUP_LIMIT_SECONDS
    while True:
        entries = {entry["version"]: entry for entry in
                   call(base, "GET", "/v1/models/tests")[1]["model_version_status"]}
        if version in entries and entries[version]["state"] == state:
            return entries[version]
        assert time.monotonic() < deadline, f"version {version} never {state}: {entries}"
        time.sleep(0.05)


def test_a_version_written_in_place_is_retried_once_complete(pushed_registry, tmp_path):  # noqa: F811
    """metadata.json lands before model.tflite. Before: END on the first poll, never retried."""
    live = tmp_path / "registry"
    shutil.copytree(pushed_registry, live)
    source, target = live / "tests" / "1", live / "tests" / "2"
    with serve(live, "--poll-seconds", "0.1", log_path=tmp_path / "log") as (base, _):
        target.mkdir()
        shutil.copy2(source / "metadata.json", target)  # the commit marker first: the wrong order
        for path in source.iterdir():
            if path.name not in ("metadata.json", "model.tflite"):
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, target / path.name)
        failed = wait_for_state(base, "2", "END")
        assert "model.tflite" in failed["status"]["error_message"]
        shutil.copy2(source / "model.tflite", target)
        assert wait_for_state(base, "2", "AVAILABLE")["status"]["error_code"] == "OK"
        status, answer = call(base, "POST", PREDICT, {"instances": [IMAGE]})
        assert status == 200 and answer["model_spec"]["version"] == "2"


def test_a_bit_flip_after_push_is_a_checksum_mismatch(pushed_registry, tmp_path):  # noqa: F811
    """One flipped byte in the middle of the pushed model.tflite (weights: it still loads).
    Before: served silently. A version pushed before checksums existed still loads, warned."""
    live = tmp_path / "registry"
    shutil.copytree(pushed_registry, live)
    source = live / "tests" / "1"
    assert (source / "checksums.json").is_file()  # the push recorded them
    metadata = registry.read_metadata(live, "tests", 1)

    def fill(folder):
        for path in source.iterdir():
            if path.name not in ("metadata.json", "checksums.json"):
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, folder / path.name)

    flipped = registry.publish(live, "tests", fill, {**metadata, "model_key": "flipped"})
    model = live / "tests" / str(flipped["version"]) / "model.tflite"
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0x01
    model.write_bytes(bytes(content))
    log = tmp_path / "log"
    with serve(live, "--poll-seconds", "0.2", log_path=log) as (base, _):
        failed = wait_for_state(base, "2", "END")
        assert failed["status"]["error_message"].startswith("checksum mismatch: model.tflite")
        assert call(base, "POST", PREDICT, {"instances": [IMAGE]})[1]["model_spec"]["version"] == "1"
    # Without checksums.json (an older push) the same version loads, with a warning.
    (model.parent / "checksums.json").unlink()
    model.write_bytes((source / "model.tflite").read_bytes())
    with serve(live, "--poll-seconds", "0.2", log_path=log) as (base, _):
        assert wait_for_state(base, "2", "AVAILABLE")
    assert "version 2 has no checksums.json" in log.read_text()
