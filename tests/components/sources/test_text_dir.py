"""The `text_dir` source on Debian's fortunes (real texts in categories, committed in
data/fortunes), with bad files."""

from __future__ import annotations

import pytest

from edgepipe.components.shared import examples_io
from tests.components.sources.conftest import read_quarantine
from tests.conftest import FORTUNES

CATEGORIES = ("fortunes", "literature", "riddles")


def corpus() -> dict[str, list[str]]:
    """Per category, its first 14 texts (entries separated by '%' lines)."""
    return {name: [entry.strip() + "\n" for entry in
                   (FORTUNES / name / f"{name}.txt").read_text("utf-8").split("\n%\n")
                   if entry.strip()][:14]
            for name in CATEGORIES}


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


# ---------------------------------------------------------------- record_separator


def test_committed_fortune_files_hold_the_documented_records():
    from edgepipe.components.ingest.sources.text_dir import split_records

    counts = {name: split_records((FORTUNES / name / f"{name}.txt").read_text("utf-8"), "%")
              for name in CATEGORIES}
    assert {name: len(records) for name, records in counts.items()} == {
        "fortunes": 431, "literature": 262, "riddles": 128}
    assert all(record.strip() for records in counts.values() for record in records)
    assert counts["fortunes"][0] == "A day for firm decisions!!!!!  Or is it?\n"


@pytest.fixture(scope="module")
def separated_run(run_stage, tmp_path_factory):
    root = tmp_path_factory.mktemp("separated")
    (root / "jokes").mkdir()
    (root / "quotes").mkdir()
    # Three records, an empty one (two separators in a row) and a blank one; the last
    # separator ends the file, so no record follows it.
    (root / "jokes" / "a.txt").write_text("one\n%\ntwo\nlines\n%\n%\n  \n%\nthree %\n%\n")
    # No final separator: the text after the last one is a record; "%%" is not a separator.
    (root / "quotes" / "b.txt").write_text("%%\n%\nfour\n%\nfive")
    properties, artifacts = run_stage("ingest", {}, {
        "source": "text_dir", "train": str(root), "record_separator": "%",
        "test_fraction": 0.0, "validation_fraction": 0.0, "max_quarantine_fraction": 0.5})
    return root, properties, artifacts["examples"]


def test_record_separator_splits_files_into_records_with_stable_ids(separated_run):
    _, _, examples = separated_run
    data = examples_io.load_numpy(examples.path, "train")
    assert dict(zip(data["id"], data["text"])) == {
        "jokes/a.txt:0": "one\n", "jokes/a.txt:1": "two\nlines\n", "jokes/a.txt:4": "three %\n",
        "quotes/b.txt:0": "%%\n", "quotes/b.txt:1": "four\n", "quotes/b.txt:2": "five"}
    labels = dict(zip(data["id"], data["label"]))
    assert labels["jokes/a.txt:4"] == 0 and labels["quotes/b.txt:2"] == 1


def test_empty_records_are_quarantined_and_counted(separated_run):
    root, properties, examples = separated_run
    assert {(record["id"], record["reason"], record["source"])
            for record in read_quarantine(examples)} == {
        ("jokes/a.txt:2", "empty_text", f"{root / 'jokes/a.txt'}:2"),
        ("jokes/a.txt:3", "empty_text", f"{root / 'jokes/a.txt'}:3")}
    assert properties["accounting"] == {"all": {
        "read": 8, "written": 6, "quarantined": 2, "by_reason": {"empty_text": 2}}}
    assert properties["splits"] == {"train": 6, "validation": 0, "test": 0}


def test_record_separator_must_be_one_line():
    from edgepipe.components.ingest.sources.config import Config

    with pytest.raises(ValueError, match="record_separator"):
        Config.model_validate({"source": "text_dir", "train": "/tmp", "record_separator": "%\n"})
    with pytest.raises(ValueError, match="record_separator"):
        Config.model_validate({"source": "idx", "record_separator": "%",
                               "class_names": ["a"]})
