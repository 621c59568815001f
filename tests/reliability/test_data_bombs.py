"""Untrusted data at bounded cost (issue 27): each bomb is generated small inside the test and
must cost memory and time in proportion to what is real, not to what a file claims. Each test
names what ingest did before ("Before:"). benchmarks/data_bombs.py replays them at full size
and measures peak memory and time."""

from __future__ import annotations

import gzip
import json
import struct
import zlib

import numpy as np
import pytest

from edgepipe.components.evaluate import metrics as evaluate_metrics
from edgepipe.components.ingest.sources import idx, image_dir
from edgepipe.components.report import sections
from edgepipe.components.shared import input_spec, png
from edgepipe.contracts import artifacts
from tests.conftest import ingest_config
from tests.fresh_process import INGEST_IN_A_FRESH_PROCESS


def idx_header(count: int) -> bytes:
    return struct.pack(">IIII", 0x00000803, count, 28, 28)


def test_an_idx_count_lie_is_refused_from_the_file_size(run_stage, tiny_fashion_mnist, tmp_path):
    """A header declaring 5,000,000 images over 100. Before: minutes at 1.8 GB (every
    declared record was planned and quarantined one by one)."""
    real = np.zeros((100, 28, 28), np.uint8).tobytes()
    for name, data in (("plain-idx3-ubyte", idx_header(5_000_000) + real),
                       ("lie-idx3-ubyte.gz", gzip.compress(idx_header(5_000_000) + real))):
        path = tmp_path / name
        path.write_bytes(data)
        config = {**ingest_config(tiny_fashion_mnist), "test_images": str(path)}
        with pytest.raises(ValueError, match="declares 5000000 images .* can hold at most") \
                as error:
            run_stage("ingest", {}, config)
        assert str(path) in str(error.value)


def test_a_gzip_bomb_is_refused_as_trailing_data(run_stage, tiny_fashion_mnist, tmp_path):
    """A header for 100 images, their pixels, then 64 MiB of zeros (64 KB compressed; the
    benchmark uses 1 GiB). Before: all of it decompressed into memory, the extra data
    silently accepted."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [stream.compress(idx_header(100) + bytes(100 * 784))]
    block = bytes(1 << 20)
    parts += [stream.compress(block) for _ in range(64)] + [stream.flush()]
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    bomb.write_bytes(b"".join(parts))
    with pytest.raises(ValueError, match="trailing data is refused") as error:
        idx.read_idx_available(str(bomb), "images", 3)
    assert str(bomb) in str(error.value)
    config = {**ingest_config(tiny_fashion_mnist), "test_images": str(bomb)}
    with pytest.raises(ValueError, match="trailing data"):
        run_stage("ingest", {}, config)


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature and IHDR for an 8-bit gray image of this size, and one tiny IDAT: what
    the decoder reads before any pixel (the pixels of a real one are zeros, KB compressed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(width + 1))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("size, reason", [(20_000, "image_too_large"), (12_000, "wrong_shape")])
def test_a_huge_png_is_quarantined_by_name_without_decoding(size, reason):
    """Before: 20000x20000 failed the whole ingest naming no file (PIL's bomb check);
    12000x12000 was decoded (741 MB) before the shape check."""
    image, found, detail = image_dir.decode(png_header(size, size), (28, 28, 1), resize=False)
    assert image is None and found == reason
    assert str(size) in detail
    image, found, detail = image_dir.decode(png_header(size, size), (28, 28, 1), resize=True)
    assert image is None and found == "image_too_large"


def test_a_huge_png_in_an_image_folder_is_quarantined(run_stage, tmp_path):
    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
        for index in range(40):
            (folder / label / f"{index}.png").write_bytes(
                png.encode(np.full((8, 8, 1), index, np.uint8)))
    (folder / "a" / "huge.png").write_bytes(png_header(20_000, 20_000))
    properties, _ = run_stage("ingest", {}, {"source": "image_dir", "train": str(folder),
                                             "image_shape": [8, 8, 1],
                                             "max_quarantine_fraction": 0.1})
    assert properties["quarantined"]["by_reason"] == {"image_too_large": 1}


def csv_lines(rows: int, columns: int = 3) -> list[str]:
    header = ",".join(["label", *(f"c{index}" for index in range(columns))])
    return [header] + [f"{'ab'[row % 2]},{row},{row % 7},0" for row in range(rows)]


def test_a_200_kb_csv_field_quarantines_its_row_with_the_line(run_stage, tmp_path):
    """Before: `field larger than field limit (131072)` failed the stage, naming neither file
    nor line."""
    lines = csv_lines(200)
    lines.insert(51, "a," + "1" * 200_000 + ",0,0")  # line 52
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    properties, artifacts_ = run_stage("ingest", {}, {
        "source": "csv", "train": str(path), "label_column": "label", "columns_as": "channels"})
    rejected = [json.loads(line) for line in (artifacts_["examples"].path / "quarantine"
                                              / "records.jsonl").read_text().splitlines()]
    assert [(record["reason"], record["source"]) for record in rejected] == [
        ("unreadable_row", f"{path}:52")]
    assert "field larger than field limit" in rejected[0]["detail"]
    assert len(rejected[0]["detail"]) < 200  # the field itself is not copied


def test_a_huge_number_is_not_a_finite_value(run_stage, tmp_path):
    """400 digits fit the csv limit; float() makes them inf, which trained on as inf."""
    lines = csv_lines(200)
    lines.insert(11, "a," + "9" * 400 + ",0,0")
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n")
    properties, _ = run_stage("ingest", {}, {
        "source": "csv", "train": str(path), "label_column": "label", "columns_as": "channels"})
    assert properties["quarantined"]["by_reason"] == {"unparseable_value": 1}


def test_a_latin1_byte_fails_naming_file_line_and_encoding(run_stage, tmp_path):
    """Before: a UnicodeDecodeError naming neither file nor line."""
    lines = csv_lines(20)
    path = tmp_path / "table.csv"
    path.write_bytes(("\n".join(lines[:5]) + "\n").encode() + "caf\u00e9,1,2,3\n".encode("latin-1")
                     + ("\n".join(lines[5:]) + "\n").encode())
    config = {"source": "csv", "train": str(path), "label_column": "label",
              "columns_as": "channels", "max_quarantine_fraction": 0.5, "class_names": ["a", "b"]}
    with pytest.raises(ValueError, match=rf"{path}:6: byte 0xe9 is not utf-8 text; set \[ingest\] "
                                         "encoding"):
        run_stage("ingest", {}, config)
    properties, _ = run_stage("ingest", {}, {**config, "encoding": "latin-1"})
    assert properties["quarantined"]["by_reason"] == {"unknown_label": 1}  # "café" is no class


def test_many_classes_are_refused_at_ingest(run_stage, tmp_path):
    """One class per row. Before: no warning; at 10,000 classes evaluate wrote an 859 MB
    confusion.json and the report passed 10.6 GB."""
    path = tmp_path / "ids.csv"
    path.write_text("label,x\n" + "".join(f"id{row},{row}\n" for row in range(1200)))
    with pytest.raises(ValueError, match=r"1,200 classes .* more than \[ingest\] max_classes = "
                                         "1000"):
        run_stage("ingest", {}, {"source": "csv", "train": str(path), "label_column": "label"})


def test_evaluation_and_report_of_many_classes_stay_proportional(tmp_path):
    classes = 10_000
    labels = np.arange(2_000) * 5 % classes
    probabilities = np.full((len(labels), classes), 1e-6, np.float32)
    probabilities[np.arange(len(labels)), (labels + (np.arange(len(labels)) % 3 == 0)) % classes] = 1
    names = [f"class{index}" for index in range(classes)]
    computed = evaluate_metrics.compute_metrics(labels, probabilities, names)
    assert set(computed["confusion"]) == {"cells"}
    assert len(computed["confusion"]["cells"]) <= len(labels)
    pairs = evaluate_metrics.confused_pairs(computed["confusion"], names, 5)
    assert len(pairs) == 5 and pairs[0]["true"] != pairs[0]["predicted"]
    artifacts.write_evaluation(tmp_path, {"accuracy": computed["accuracy"]}, names,
                               computed["confusion"], {}, [])
    assert (tmp_path / "confusion.json").stat().st_size < 1_000_000  # dense: 100 M numbers
    matrix, shown = sections._plotted_confusion(artifacts.read_confusion(tmp_path))
    assert len(shown) == sections.PLOTTED_CLASSES == len(matrix)
    # the report's per-class table keeps the classes with the lowest F1 and says so
    metrics = {key: value for key, value in computed.items() if key != "confusion"} | {
        "calibration": evaluate_metrics.calibration(labels, probabilities, 10),
        "top_k_accuracy": {}, "confused_pairs": pairs, "slices": {},
        "blessing": {"gates": []}}
    artifacts.write_evaluation(tmp_path, metrics, names, computed["confusion"], {}, [])
    page = sections.evaluation(tmp_path, names)
    assert len(page["per_class"]) == sections.TABLED_CLASSES
    assert page["classes_not_tabled"] == classes - sections.TABLED_CLASSES
    assert max(row["f1"] for row in page["per_class"]) <= min(
        metrics["per_class"][name]["f1"] for name in names
        if name not in {row["name"] for row in page["per_class"]})
    small = evaluate_metrics.compute_metrics(np.array([0, 1, 2]), np.eye(3)[[0, 2, 2]], list("abc"))
    assert small["confusion"] == {"matrix": [[1, 0, 0], [0, 0, 1], [0, 0, 1]]}


def test_a_constant_column_is_named_and_normalised_harmlessly(run_stage, tmp_path):
    """MNIST as 784 pixel columns, whose border pixels are always 0. Before: train failed
    with "std > 0 expected" and a 27 KB message listing every mean and std."""
    path = tmp_path / "table.csv"
    path.write_text("\n".join(csv_lines(200)) + "\n")  # column c2 is always 0
    _, ingested = run_stage("ingest", {}, {"source": "csv", "train": str(path),
                                           "label_column": "label", "columns_as": "channels"})
    properties, statistics = run_stage("statistics", {"examples": ingested["examples"]}, {})
    anomalies = artifacts.read_anomalies(statistics["statistics"].path)
    (constant,) = [anomaly for anomaly in anomalies if "columns" in anomaly]
    assert constant["columns"] == ["c2"] and constant["severity"] == "warning"
    assert "'c2'" in constant["description"] and "halt" not in properties
    spec = input_spec.input_spec(ingested["examples"].path, statistics["statistics"].path)
    assert spec["normalization"]["variance"][2] == 1.0
    assert all(value > 0 for value in spec["normalization"]["variance"])


def test_ingest_never_imports_tensorflow(tiny_fashion_mnist, tmp_path):
    """Ingest's memory follows the data: it writes and checks the TFDS dataset without
    TensorFlow. Before: TFDS's read-back check imported it, 600 MB before the first record,
    so an honest ingest of 100 images peaked at 800 MB."""
    import subprocess
    import sys

    from tests.conftest import REPO

    completed = subprocess.run(
        [sys.executable, "-c", INGEST_IN_A_FRESH_PROCESS,
         json.dumps(ingest_config(tiny_fashion_mnist)), str(tmp_path / "store")],
        cwd=REPO, capture_output=True, text=True, check=True)
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    assert sum(outcome["splits"].values()) == 400
    assert outcome["tensorflow"] is False
    assert outcome["peak_mb"] < 500


def test_the_read_back_check_names_a_shard_that_does_not_match_its_features(tmp_path):
    import tensorflow_datasets as tfds

    from edgepipe.components.ingest import stage as ingest

    written = tfds.features.FeaturesDict({"id": tfds.features.Text()})
    expected = tfds.features.FeaturesDict({"id": tfds.features.Text(),
                                           "label": tfds.features.ClassLabel(num_classes=2)})
    record = written.serialize_example({"id": "a"})
    shard = tmp_path / "examples-train.tfrecord-00000-of-00001"
    shard.write_bytes(struct.pack("<Q", len(record)) + b"\0" * 4 + record + b"\0" * 4)
    ingest.check_readable(written, {"train": [str(shard)]})  # the right features decode
    with pytest.raises(RuntimeError, match="does not decode with the dataset's features") \
            as error:
        ingest.check_readable(expected, {"train": [str(shard)]})
    assert str(shard) in str(error.value)
