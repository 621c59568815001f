"""Which model versions are served, and loading new ones from the registry without a restart.

A poller lists the registry every few seconds. A new version is loaded and checked (a warm-up
predict) beside the served ones; only then is it published, by replacing one dict with another
(readers never lock and never see a half-loaded version). Requests already running keep the
version object they started with. A version that fails to load (a file missing or cut short,
a checksum mismatch) is reported in the status API (END with the error) and the previous one
keeps serving; it is tried again when its files change (names, sizes or modification times,
compared at every poll), so a version folder written in place, metadata.json first, is
served once it is complete. The latest `keep_versions` loaded versions stay available under
/versions/<v>.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Any

from edgepipe.contracts import registry, storage
from edgepipe.serving.runtime import ChecksumMismatch, ModelVersion, load

log = logging.getLogger("edgepipe.serve")
# An absolute path inside a message (after a space, quote or parenthesis): cut to its name.
_ABSOLUTE_PATH = re.compile(r"""(^|[\s'"(=])(/[^\s'"():,;]+)""")


class NotFound(Exception):
    """An unknown model or version: the message lists what is served."""


class Models:
    def __init__(self, registry_path: str, names: list[str] | None = None, runtime: str = "litert",
                 workers: int = 2, keep_versions: int = 1):
        self.registry = registry_path
        self.names = list(names or [])  # empty: every model in the registry
        self.runtime = runtime
        self.workers = workers
        self.keep_versions = max(1, keep_versions)
        self.served: dict[str, dict[int, ModelVersion]] = {}  # replaced whole, never mutated
        self.states: dict[str, dict[int, dict[str, str]]] = {}  # name -> version -> state, error
        self._failed: dict[tuple[str, int], tuple] = {}  # (name, version) -> its files' fingerprint
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        versions = self.served.get(name)
        if not versions:
            raise NotFound(f"Servable not found for request: {'Latest' if version is None else 'Specific'}"
                           f"({name}{'' if version is None else f', {version}'}); models served: {sorted(self.served)}")
        if version is None:
            return versions[max(versions)]
        if version not in versions:
            raise NotFound(f"Servable not found for request: Specific({name}, {version}); "
                           f"versions of {name!r} served: {sorted(versions)}")
        return versions[version]

    def status(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """TF Serving's model_version_status entries, newest first."""
        states = self.states.get(name)
        if not states or (version is not None and version not in states):
            raise NotFound(f"Could not find any versions of model {name}"
                           + ("" if version is None else f" with version {version}")
                           + f"; models known: {sorted(self.states)}")
        chosen = [version] if version is not None else sorted(states, reverse=True)
        return [
            {"version": str(number), "state": states[number]["state"],
             "status": {"error_code": "OK" if not states[number]["error"] else "UNKNOWN",
                        "error_message": states[number]["error"]}}
            for number in chosen
        ]

    def ready(self) -> bool:
        wanted = self.names or list(self.served)
        poller_died = self._poller is not None and not self._poller.is_alive() \
            and not self._stop.is_set()
        return bool(wanted) and not poller_died and all(self.served.get(name) for name in wanted)

    def refresh(self) -> None:
        """Load what the registry has that is not served yet; drop what fell out of the window.
        Never raises: a registry that cannot be listed (a permission error, a bucket that does
        not answer) is logged and tried again at the next poll."""
        with self._refresh_lock:
            try:
                names = self.names or registry.model_names(self.registry)
            except Exception as error:
                log.error("listing the models of %s failed (tried again at the next poll): "
                          "%s: %s", self.registry, type(error).__name__, error)
                return
            for name in names:
                try:
                    self._refresh_model(name)
                except Exception as error:  # an unreadable model must not stop the poller
                    log.error("refreshing model %r from %s failed (tried again at the next "
                              "poll): %s: %s", name, self.registry, type(error).__name__, error)

    def _refresh_model(self, name: str) -> None:
        available = registry.list_versions(self.registry, name)
        states = self.states.setdefault(name, {})
        failed = {version for version, state in states.items()
                  if state["error"] and not self._changed_since_failure(name, version)}
        wanted = [version for version in available if version not in failed][-self.keep_versions:]
        current = dict(self.served.get(name, {}))
        for version in wanted:
            if version not in current:
                self._load(name, version, current, states)
        # Nothing wanted could be loaded (or the listing came back empty): keep what serves.
        keep = {version for version in wanted if version in current} or set(current)
        for version in set(current) - keep:
            del current[version]
            states[version] = {"state": "END", "error": ""}
            log.info("model %s version %d unloaded", name, version)
        self.served = {**self.served, name: current}  # one assignment: the switch

    def _load(self, name: str, version: int, current: dict, states: dict) -> None:
        path = registry.version_path(self.registry, name, version)
        # Taken before loading: a file written during the load changes it, so the next poll
        # tries again.
        before = fingerprint(path)
        retry = (name, version) in self._failed
        states[version] = {"state": "LOADING", "error": ""}
        try:
            # a bucket registry's version is loaded from a copy in the edgepipe cache
            local = registry.local_version(self.registry, name, version, refresh=retry)
            current[version] = load(name, version, local, self.runtime, self.workers)
        except Exception as error:
            message = str(error) if isinstance(error, ChecksumMismatch) else f"{type(error).__name__}: {error}"
            # The status API is public: it names files relative to the registry, never the
            # server's absolute paths (the log keeps them).
            states[version] = {"state": "END", "error": self._public(message, name, version)}
            self._failed[(name, version)] = before
            log.error("model %s version %d failed to load, not served (tried again when its files "
                      "change): %s", name, version, message)
            return
        self._failed.pop((name, version), None)
        states[version] = {"state": "AVAILABLE", "error": ""}
        log.info("model %s version %d loaded and checked in %.2f s (%s)%s", name, version,
                 current[version].load_seconds, self.runtime, " after its files changed" if retry else "")

    def _public(self, message: str, name: str, version: int) -> str:
        """The message with the version's folders (registry and local copy) written as
        <name>/<version>, and any other absolute path cut to its file name."""
        version_dir = f"{name}/{version}"
        for folder in {registry.version_path(self.registry, name, version),
                       os.path.abspath(registry.version_path(self.registry, name, version)),
                       os.path.realpath(registry.version_path(self.registry, name, version))}:
            message = message.replace(folder, version_dir)
        return _ABSOLUTE_PATH.sub(lambda match: match[1] + os.path.basename(match[2]), message)

    def _changed_since_failure(self, name: str, version: int) -> bool:
        before = self._failed.get((name, version))
        return before is not None and fingerprint(registry.version_path(self.registry, name, version)) != before

    def poll(self, seconds: float) -> threading.Thread:
        """Refresh every `seconds` in a daemon thread until stop(). An error of one poll is
        logged and the next poll runs; should the thread end anyway (an error that is not an
        Exception), it says so and ready() turns false, so /readyz answers 503."""
        def loop() -> None:
            try:
                while not self._stop.wait(seconds):
                    try:
                        self.refresh()
                    except Exception as error:  # refresh catches its own; this is the backstop
                        log.error("registry poll failed (tried again in %g s): %s: %s", seconds,
                                  type(error).__name__, error)
            except BaseException as error:  # SystemExit, KeyboardInterrupt: the thread ends
                log.critical("the registry poller stopped (%s: %s): new versions are no longer "
                             "loaded and /readyz answers 503; restart the server",
                             type(error).__name__, error)

        self._poller = threading.Thread(target=loop, name="registry-poller", daemon=True)
        self._poller.start()
        return self._poller

    def stop(self) -> None:
        self._stop.set()


def fingerprint(path: str) -> tuple:
    """(relative path, size, modification time) of every file of a version folder, sorted:
    it changes when a file is added, removed or rewritten."""
    if storage.is_remote(path):
        fs, key = storage.filesystem(path)
        details = fs.find(key, detail=True)
        return tuple(sorted((name, info.get("size"), str(info.get("mtime") or info.get("updated")
                                                          or info.get("etag") or ""))
                            for name, info in details.items()))
    entries = []
    for directory, _, names in os.walk(path):
        for name in names:
            full = os.path.join(directory, name)
            try:
                stat = os.stat(full)
            except OSError:  # removed while listed: the next poll sees the change
                continue
            entries.append((os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))
