"""Helpers of the source tests (the JapaneseVowels fixture, shared with other tests, is in
tests/conftest.py)."""

from __future__ import annotations

import pytest

def read_quarantine(examples) -> list[dict]:
    import json

    path = examples.path / "quarantine" / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="session")
def fashion_arrays(tiny_fashion_mnist):
    """{"train": (images [300,28,28], labels), "test": (images [100,28,28], labels)}."""
    from tests.components.test_ingest import raw_arrays

    return {split: raw_arrays(tiny_fashion_mnist, split) for split in ("train", "test")}


def folder_name(class_name: str) -> str:
    return class_name.replace("/", "-")  # "T-shirt/top" cannot be a folder name
