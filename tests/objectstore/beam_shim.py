"""What Beam's GCS I/O needs to work against fake-gcs-server, and nothing a real bucket needs:
kept with the tests, out of the product.

- Beam looks for Google credentials before it goes anonymous (about 25 s per process: its
  look-up retries with back-off); an emulator wants anonymous access at once, so Beam's
  process-wide credential cache is filled with "none".
- Beam copies and deletes objects in GCS batch requests, which fake-gcs-server answers with an
  empty reply; GcsIO.copy_batch and delete_batch make one request per object instead.

Beam has no option for either, so these touch its internals (`_Credentials`, GcsIO). `install`
applies them in this process, now for the modules already imported and on import for the
others (Beam is imported lazily by the stages); site/sitecustomize.py calls it in every process
started with the emulator's environment (emulator.environment puts site/ on PYTHONPATH): the
`edgepipe` commands the tests start and the DirectRunner's multi_processing workers.
"""

from __future__ import annotations

import importlib.abc
import sys


def _anonymous(auth) -> None:
    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials, auth._Credentials._credentials_init = None, True


def _one_request_per_object(gcsio) -> None:
    gcsio.GcsIO.copy_batch = _copy_one_by_one
    gcsio.GcsIO.delete_batch = _delete_one_by_one


PATCHES = {"apache_beam.internal.gcp.auth": _anonymous,
           "apache_beam.io.gcp.gcsio": _one_request_per_object}


def _copy_one_by_one(self, src_dest_pairs):
    results = []
    for src, dest in src_dest_pairs:
        try:
            self.copy(src, dest)
            results.append((src, dest, None))
        except Exception as error:  # noqa: BLE001  reported per pair, as copy_batch does
            results.append((src, dest, error))
    return results


def _delete_one_by_one(self, paths):
    results = []
    for path in paths:
        try:
            self.delete(path)
            results.append((path, None))
        except Exception as error:  # noqa: BLE001  reported per path, as delete_batch does
            results.append((path, error))
    return results


class _Patched(importlib.abc.Loader):
    """A module's own loader, then its patch."""

    def __init__(self, loader, patch):
        self.loader, self.patch = loader, patch

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.patch(module)


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Patched(spec.loader, PATCHES[name])
                return spec
        return None


def install() -> None:
    """Patch the modules already imported; patch the others when they are imported."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(finder, _PatchOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
