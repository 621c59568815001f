"""The `text_dir` source on Debian's fortunes (real texts in categories), with bad files."""

from __future__ import annotations

import pathlib

import pytest

from components import examples_io
from tests.components.sources.conftest import read_quarantine

FORTUNES = pathlib.Path("/usr/share/games/fortunes")
CATEGORIES = ("fortunes", "literature", "riddles")


def corpus() -> dict[str, list[str]]:
    """Per category, its first 14 texts: the files of Debian's fortunes-min package when
    installed (entries separated by '%' lines), else short texts written here."""
    if all((FORTUNES / name).is_file() for name in CATEGORIES):
        texts = {name: [entry.strip() + "\n" for entry in
                        (FORTUNES / name).read_text("utf-8").split("\n%\n") if entry.strip()]
                 for name in CATEGORIES}
    else:
        texts = {name: [f"A {name} text, number {index}: {'word ' * index}\n"
                        for index in range(14)] for name in CATEGORIES}
    return {name: entries[:14] for name, entries in texts.items()}


@pytest.fixture(scope="module")
def text_run(run_stage, tmp_path_factory):
    root = tmp_path_factory.mktemp("text_dir")
    texts = corpus()
    for name, entries in texts.items():
        for index, text in enumerate(entries):
            split = "train" if index < 10 else "test"
            path = root / split / name / f"{index}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, "utf-8")
    (root / "train" / "riddles" / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (root / "train" / "literature" / "blank.txt").write_text("  \n\n")
    (root / "test" / "poems").mkdir()
    (root / "test" / "poems" / "0.txt").write_text("A category train never had.\n")
    properties, artifacts = run_stage("ingest", {}, {
        "source": "text_dir", "train": str(root / "train"), "test": str(root / "test"),
        "max_quarantine_fraction": 0.1})
    return root, texts, properties, artifacts["examples"]


def test_texts_round_trip(text_run):
    _, texts, properties, examples = text_run
    assert examples_io.input_feature(examples.path) == "text"
    assert examples_io.class_names(examples.path) == list(CATEGORIES)
    seen = 0
    for split in ("train", "validation", "test"):
        data = examples_io.load_numpy(examples.path, split)
        for record_id, text, label in zip(data["id"], data["text"], data["label"]):
            category, file = record_id.split("/")
            assert text == texts[category][int(file.removesuffix(".txt"))]
            assert CATEGORIES[label] == category
            seen += 1
    assert seen == 42


def test_bad_files_are_quarantined_exactly(text_run):
    root, _, properties, examples = text_run
    rejected = {record["id"]: (record["reason"], record["source"])
                for record in read_quarantine(examples)}
    assert rejected == {
        "riddles/latin1.txt": ("undecodable_text", str(root / "train/riddles/latin1.txt")),
        "literature/blank.txt": ("empty_text", str(root / "train/literature/blank.txt")),
        "poems/0.txt": ("unknown_label", str(root / "test/poems/0.txt")),
    }
    assert properties["accounting"] == {
        "train": {"read": 32, "written": 30, "quarantined": 2,
                  "by_reason": {"undecodable_text": 1, "empty_text": 1}},
        "test": {"read": 13, "written": 12, "quarantined": 1, "by_reason": {"unknown_label": 1}},
    }


def test_text_statistics_count_lengths(run_stage, text_run):
    import json

    _, _, _, examples = text_run
    properties, artifacts = run_stage("statistics", {"examples": examples}, {})
    statistics = json.loads((artifacts["statistics"].path / "statistics.json").read_text())
    for split, summary in statistics["splits"].items():
        texts = examples_io.load_numpy(examples.path, split)["text"]
        lengths = [len(text) for text in texts]
        text = summary["features"]["text"]
        assert text["type"] == "text" and text["missing"] == 0
        assert text["length"]["distribution"] == {
            str(length): lengths.count(length) for length in sorted(set(lengths))}
        assert text["mean_words"] == pytest.approx(sum(len(t.split()) for t in texts) / len(texts))
    assert properties["input_feature"] == "text" and properties["anomalies"]["errors"] == 0
