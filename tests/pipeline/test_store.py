"""The store is one interface with two implementations, and a stage is called in one place:
the local and the bucket root share the execution path (tests/objectstore runs it on gs://)."""

from __future__ import annotations

import ast

from edgepipe.pipeline.objectstore import ObjectStore
from edgepipe.pipeline.store import LocalStore, Store
from tests.conftest import REPO


def test_store_of_a_root_is_the_implementation_it_needs(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPIPE_CACHE_DIR", str(tmp_path / "cache"))
    local, bucket = Store(tmp_path / "root"), Store("gs://bucket/prefix/")
    assert type(local) is LocalStore and local.root == (tmp_path / "root").resolve()
    assert type(bucket) is ObjectStore and bucket.root == "gs://bucket/prefix"
    assert isinstance(bucket, Store) and bucket.local.is_relative_to(tmp_path / "cache")
    assert local.output_path("train", "k", "model") == local.root / "artifacts/train/k/model"
    assert bucket.output_path("train", "k", "model") == "gs://bucket/prefix/artifacts/train/k/model"


def test_a_stage_is_called_in_one_place_and_nothing_asks_which_store_it_has():
    calls, remote = [], []
    for path in sorted((REPO / "pipeline").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr == "run" and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "spec"):
                calls.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "remote":
                remote.append(f"{path.name}:{node.lineno}")
    assert len(calls) == 1 and calls[0].startswith("store.py:"), calls
    assert remote == []
