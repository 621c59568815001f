"""The model server's registry poller and error replies under hostile or careless use (issue
27). Each test names what the server did before ("Before:"); each of those failed against it."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from edgepipe.contracts import registry
from edgepipe.serving import requests
from edgepipe.serving.models import Models
from tests.serving.conftest import call, pushed_registry, serve  # noqa: F401

PREDICT = "/v1/models/tests:predict"
IMAGE = [[[0]] * 28] * 28


def copy_version(live, source: int, target: int) -> None:
    shutil.copytree(live / "tests" / str(source), live / "tests" / str(target))


def wait_until(condition, what: str, seconds: float = 60.0) -> None:
    """Bounds the test, never times the server: the condition is what is asserted."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_non_ascii_digit_folder_does_not_kill_the_poller(pushed_registry, tmp_path):  # noqa: F811
    """A folder "²" with a metadata.json in a registry served whole. Before: model_names()
    raised outside the poll's try, `Exception in thread registry-poller`, version 5 was never
    loaded and /readyz kept answering 200."""
    live = tmp_path / "registry"
    shutil.copytree(pushed_registry, live)
    models = Models(str(live), workers=1)
    models.refresh()
    models.poll(0.05)
    try:
        stray = live / "tests" / "²"
        stray.mkdir()
        shutil.copy2(live / "tests" / "1" / registry.METADATA, stray)
        assert registry.list_versions(live, "tests") == [1]  # "²" is not a version
        polls = models._poller.is_alive, "the poller died"
        time.sleep(0.3)  # several polls see the stray folder
        assert polls[0](), polls[1]
        shutil.rmtree(stray)
        copy_version(live, 1, 5)
        wait_until(lambda: 5 in models.served.get("tests", {}), "version 5 was never loaded")
        assert models.ready()
    finally:
        models.stop()


def test_readiness_turns_false_when_the_poller_stops(pushed_registry, tmp_path):  # noqa: F811
    """A poll that raises something other than an Exception ends the thread. Before: nothing
    noticed; /readyz answered 200 while no new version would ever load."""
    live = tmp_path / "registry"
    shutil.copytree(pushed_registry, live)
    models = Models(str(live), workers=1)
    models.refresh()
    assert models.ready()
    calls = []

    def failing_refresh():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("the bucket did not answer")  # an ordinary error: survived
        raise SystemExit("a poll that ends the thread")

    models.refresh = failing_refresh
    thread = models.poll(0.05)
    thread.join(timeout=30)
    assert len(calls) == 2 and not thread.is_alive()
    assert not models.ready()


def test_a_failed_versions_status_names_no_server_path(pushed_registry, tmp_path):  # noqa: F811
    """Before: the status of a version that failed to load showed the registry's absolute
    path (a checksum mismatch said "in /srv/.../tests/2")."""
    live = tmp_path / "registry"
    shutil.copytree(pushed_registry, live)
    copy_version(live, 1, 2)
    model = live / "tests" / "2" / "model.tflite"
    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0x01
    model.write_bytes(bytes(content))
    models = Models(str(live), workers=1)
    models.refresh()
    (entry,) = models.status("tests", 2)
    message = entry["status"]["error_message"]
    assert entry["state"] == "END" and message.startswith("checksum mismatch: model.tflite")
    assert "tests/2" in message and str(tmp_path) not in message
    # The server's own log keeps the absolute path.


def test_an_integer_of_5000_digits_is_400_not_500(pushed_registry, tmp_path):  # noqa: F811
    """Before: 500 with Python's error text ("Exceeds the limit (4300 digits)") and a
    traceback in the log for each request (200 requests: 346 KB of log)."""
    huge = "9" * 5000
    body = ('{"instances": [%s]}' % huge).encode()
    with pytest.raises(requests.RequestError) as error:
        requests.parse_body(body)
    assert error.value.status == 400 and "number that cannot be read" in error.value.message
    log = tmp_path / "serve.log"
    with serve(pushed_registry, log_path=log) as (base, _):
        image = json.dumps({"instances": [IMAGE]})
        request = image.replace("[0]", f"[{huge}]", 1).encode()
        assert huge in request.decode()
        answers = [call(base, "POST", PREDICT, request) for _ in range(20)]
        assert {status for status, _ in answers} == {400}
        assert "cannot be read" in answers[0][1]["error"]
        assert call(base, "GET", "/v1/models/tests/labels/stable")[0] == 404
        status, answer = call(base, "GET", "/v1/models/tests/labels/stable")
        assert "labels" in answer["error"] and "not supported" in answer["error"]
    assert "Traceback" not in log.read_text()


def test_a_500_reply_echoes_no_exception_text(caplog):
    """A request that hits a bug (here a scope without headers, which the app reads).
    Before: the reply carried "internal error: KeyError: 'headers'", and any exception's
    text (paths, data) went to the client."""
    import asyncio

    from edgepipe.serving.app import App

    app = App(Models("/nonexistent-registry"), bodies=None, metrics=None)
    scope = {"type": "http", "method": "GET", "path": "/v1/models/secret-path-1234"}
    answers = [asyncio.run(app._answer(scope, None, {})) for _ in range(3)]
    assert {answer[0] for answer in answers} == {500}
    assert all("headers" not in json.dumps(answer[1]) for answer in answers)
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1  # once per place, then one line per request
