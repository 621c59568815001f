"""Fixtures of the source tests: the committed JapaneseVowels sample ingested once."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

JAPANESE_VOWELS = REPO / "data" / "japanese_vowels"


@pytest.fixture(scope="session")
def vowels_examples(run_stage):
    """(properties, Examples artifact) of the full JapaneseVowels .ts files."""
    properties, artifacts = run_stage("ingest", {}, {
        "source": "ts",
        "train": str(JAPANESE_VOWELS / "JapaneseVowels_TRAIN.ts"),
        "test": str(JAPANESE_VOWELS / "JapaneseVowels_TEST.ts"),
    })
    return properties, artifacts["examples"]


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
