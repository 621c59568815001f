"""Statistics: per-split statistics of an Examples dataset, its schema, and anomalies (Beam).

Each split's TFRecord shards are read with Beam, decoded with the dataset's own TFDS
features, and summarised by one CombineFn. The statistics are exact: images keep a count per
pixel value (0..255) and per image size; sequences keep per-channel count, mean and sum of
squared deviations (merged with Chan's formula), min and max, and a count per length; texts
keep a count per length in characters and, in a second Beam branch (components/vocabulary.py),
per length in tokens; for the train split that branch also computes the vocabulary of text
models (`vocabulary.txt` in the statistics artifact).

Outputs follow TFDV's formats (tensorflow_metadata DatasetFeatureStatisticsList and Schema)
so TFDV and Facets can read them, plus readable JSON. This module holds the stage contract
and the Beam computation. What works on its finished sums lives apart: the summaries
(readable per-split statistics and the statistics proto) in components/statistics_summary.py,
and the schema side (inferring the schema from train or loading a saved one, and checking
every split's summaries against it for anomalies) in components/schema.py.

TensorFlow, TFDS and Beam are imported inside functions so a cached pipeline does not pay
for importing them.
"""

from __future__ import annotations

import json
import pathlib
import warnings
from typing import Any

import numpy as np
import pydantic

from components import examples_io, text_tokens, vocabulary
from components.beam_pipeline import create_pipeline
from components.schema import expectations, find_anomalies, infer_schema, load_schema
from components.statistics_summary import summarise, summarise_lengths, to_proto
from pipeline.stage import ExistingPath, StageConfig

NAME = "statistics"
VERSION = 3
INPUTS = {"examples": "Examples"}
OUTPUTS = {"statistics": "Statistics", "schema": "Schema"}
CODE = ("components.examples_io", "components.vocabulary", "components.text_tokens",
        "components.schema", "components.statistics_summary")


with warnings.catch_warnings():  # the key is `schema`, as users write it; BaseModel.schema()
    warnings.filterwarnings("ignore", message='Field name "schema"')  # is deprecated anyway

    class Config(StageConfig):
        histogram_bins: int = pydantic.Field(
            10, ge=1, le=256, description="Equal-width bins of the value and length histograms.")
        label_shift_threshold: float = pydantic.Field(
            0.1, ge=0.0, le=1.0,
            description="Max L-infinity distance between train's and another split's normalised "
            "label distribution before a warning (written into an inferred schema).",
        )
        schema: ExistingPath | None = pydantic.Field(
            None, description="A saved schema.pbtxt (or a schema artifact folder holding one) to "
            "validate against instead of inferring one from train.")
        vocabulary_size: int = pydantic.Field(
            10000, ge=3, description="Text: most entries of vocabulary.txt, computed on the "
            "train split, including [PAD] (id 0) and [UNK] (id 1); rarer tokens map to [UNK].")
        min_token_count: int = pydantic.Field(
            1, ge=1, description="Text: a token enters the vocabulary only when it occurs at "
            "least this often in the train split.")


# ---------------------------------------------------------------- Beam part


_FEATURES_CACHE: dict = {}


def _decode(serialized: bytes, examples_dir: str, feature: str):
    """(decoded input value, label) of one serialized example; None where a value is missing."""
    import tensorflow as tf

    if examples_dir not in _FEATURES_CACHE:  # once per worker process
        _FEATURES_CACHE[examples_dir] = examples_io.features(examples_dir)
    spec = _FEATURES_CACHE[examples_dir][feature]
    example = tf.train.Example.FromString(serialized).features.feature
    labels = example["label"].int64_list.value if "label" in example else []
    label = int(labels[0]) if labels else None
    if feature not in example:
        return None, label
    if feature == "sequence":
        values = np.asarray(example[feature].float_list.value, dtype=np.float32)
        return (spec.decode_example_np(values) if values.size else None), label
    encoded = example[feature].bytes_list.value
    if not encoded or not encoded[0]:
        return None, label
    if feature == "image":
        return spec.decode_example_np(encoded[0]), label
    return encoded[0].decode("utf-8", errors="replace"), label


def _count(table: dict, key) -> None:
    table[key] = table.get(key, 0) + 1


class SplitStatistics:
    """The CombineFn methods over (value, label) pairs; see SplitStatisticsFn below."""

    def __init__(self, feature: str, channels: int = 0):
        self.feature, self.channels = feature, channels

    def create_accumulator(self):
        accumulator = {"count": 0, "value_missing": 0, "label_missing": 0, "labels": {},
                       "sizes": {}}  # image shapes "HxWxC", sequence/text lengths
        if self.feature == "image":
            accumulator["pixel_counts"] = np.zeros(256, dtype=np.int64)
        elif self.feature == "sequence":
            accumulator.update(steps=0, mean=np.zeros(self.channels), m2=np.zeros(self.channels),
                               min=np.full(self.channels, np.inf),
                               max=np.full(self.channels, -np.inf))
        else:
            accumulator["words"] = 0
        return accumulator

    def add_input(self, accumulator, element):
        value, label = element
        accumulator["count"] += 1
        if label is None:
            accumulator["label_missing"] += 1
        else:
            _count(accumulator["labels"], label)
        if value is None:
            accumulator["value_missing"] += 1
        elif self.feature == "image":
            accumulator["pixel_counts"] += np.bincount(value.ravel(), minlength=256)
            _count(accumulator["sizes"], "x".join(map(str, value.shape)))
        elif self.feature == "sequence":
            _count(accumulator["sizes"], len(value))
            values = value.astype(np.float64)
            mean = values.mean(axis=0)
            self._merge_moments(accumulator, len(values), mean, ((values - mean) ** 2).sum(0),
                                values.min(axis=0), values.max(axis=0))
        else:
            _count(accumulator["sizes"], len(value))
            accumulator["words"] += len(value.split())
        return accumulator

    @staticmethod
    def _merge_moments(accumulator, steps, mean, m2, low, high):
        """Chan et al.'s parallel update of count, mean and M2 (sum of squared deviations)."""
        total = accumulator["steps"] + steps
        if not steps:
            return
        delta = mean - accumulator["mean"]
        accumulator["mean"] = accumulator["mean"] + delta * steps / total
        accumulator["m2"] = accumulator["m2"] + m2 + delta**2 * accumulator["steps"] * steps / total
        accumulator["steps"] = total
        accumulator["min"] = np.minimum(accumulator["min"], low)
        accumulator["max"] = np.maximum(accumulator["max"], high)

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for key in ("count", "value_missing", "label_missing", "pixel_counts", "words"):
                if key in merged:
                    merged[key] += accumulator[key]
            for key in ("labels", "sizes"):
                for value, count in accumulator[key].items():
                    merged[key][value] = merged[key].get(value, 0) + count
            if self.feature == "sequence":
                self._merge_moments(merged, accumulator["steps"], accumulator["mean"],
                                    accumulator["m2"], accumulator["min"], accumulator["max"])
        return merged

    def extract_output(self, accumulator):
        return {key: value.tolist() if isinstance(value, np.ndarray) else value
                for key, value in accumulator.items()}


def __getattr__(name: str):
    """SplitStatisticsFn = SplitStatistics as a beam.CombineFn, made when first used (Beam is
    imported lazily); stored as a module global so workers unpickle it by reference."""
    if name != "SplitStatisticsFn":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in globals():
        return globals()[name]
    import apache_beam as beam

    combine_fn = type(name, (SplitStatistics, beam.CombineFn), {"__module__": __name__})
    globals()[name] = combine_fn
    return combine_fn


def ComputeSplitStatistics(examples_dir: str, feature: str = "image", channels: int = 0):
    """Serialized TFDS examples -> one dict of raw sums (see SplitStatistics)."""
    import apache_beam as beam

    @beam.ptransform_fn
    def compute_split_statistics(serialized):
        return (
            serialized
            | "Decode" >> beam.Map(_decode, examples_dir, feature)
            | "Combine" >> beam.CombineGlobally(
                __getattr__("SplitStatisticsFn")(feature, channels))
        )

    return compute_split_statistics()


# ---------------------------------------------------------------- the stage


def run(inputs, outputs, config: Config, context) -> dict[str, Any]:
    import apache_beam as beam
    from google.protobuf import text_format

    examples_dir = str(inputs["examples"].path)
    class_names = examples_io.class_names(examples_dir)
    splits = examples_io.split_names(examples_dir)
    feature = examples_io.input_feature(examples_dir)
    shape = examples_io.input_shape(examples_dir)
    channels = int(shape[-1]) if feature == "sequence" else 0
    sums_dir = pathlib.Path(context.scratch_dir) / "sums"
    context.log.info("statistics: reading splits %s of %s (%s)", splits, examples_dir, feature)

    with create_pipeline(context.runtime) as pipeline:
        for split in splits:
            serialized = pipeline | f"Read{split.title()}" >> beam.io.ReadFromTFRecord(
                f"{examples_dir}/*-{split}.tfrecord-*-of-*")
            if feature == "text":  # token lengths, and the vocabulary of the train split
                _ = serialized | f"Text{split.title()}" >> vocabulary.TextStatistics(
                    examples_dir, _decode, str(sums_dir / split),
                    config.vocabulary_size if split == "train" else None, config.min_token_count)
            _ = (
                serialized
                | f"Statistics{split.title()}" >> ComputeSplitStatistics(
                    examples_dir, feature, channels)
                | f"ToJson{split.title()}" >> beam.Map(json.dumps)
                | f"Write{split.title()}" >> beam.io.WriteToText(
                    str(sums_dir / split), file_name_suffix=".json", shard_name_template="")
            )

    summaries = {split: summarise(json.loads((sums_dir / f"{split}.json").read_text()),
                                  class_names, config.histogram_bins, feature, channels)
                 for split in splits}
    words = None
    if feature == "text":
        for split in splits:
            token_lengths, found = vocabulary.read_results(sums_dir, split)
            summaries[split]["features"]["text"]["tokens"] = summarise_lengths(
                token_lengths, config.histogram_bins)
            words = found if found is not None else words
    if "train" not in summaries or summaries["train"]["num_examples"] == 0:
        raise ValueError(f"{examples_dir} has no training examples: the schema is inferred "
                         "from the train split; check the ingest stage's inputs.")
    if config.schema:
        schema = load_schema(config.schema)
    else:
        schema = infer_schema(summaries["train"]["features"], class_names,
                              config.label_shift_threshold)
    anomalies = find_anomalies(
        summaries, class_names, expectations(schema, config.label_shift_threshold))

    statistics_dir = pathlib.Path(outputs["statistics"])
    schema_dir = pathlib.Path(outputs["schema"])
    (statistics_dir / "statistics.pb").write_bytes(to_proto(summaries).SerializeToString())
    readable: dict[str, Any] = {"splits": summaries}
    if words is not None:
        readable["vocabulary"] = vocabulary.summary(words, config.vocabulary_size,
                                                    config.min_token_count)
    (statistics_dir / "statistics.json").write_text(json.dumps(readable, indent=2) + "\n")
    (statistics_dir / "anomalies.json").write_text(
        json.dumps({"anomalies": anomalies}, indent=2) + "\n")
    (schema_dir / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    if words is not None:
        text_tokens.write_vocabulary(statistics_dir / vocabulary.VOCABULARY_FILE, words)

    errors = [anomaly for anomaly in anomalies if anomaly["severity"] == "error"]
    for anomaly in anomalies:
        context.log.warning("statistics: %(severity)s in %(split)s/%(feature)s: "
                            "%(description)s", anomaly)
    properties: dict[str, Any] = {
        "num_examples": {split: summary["num_examples"] for split, summary in summaries.items()},
        "input_feature": feature,
        "schema": config.schema or "inferred from train",
        "anomalies": {"errors": len(errors), "warnings": len(anomalies) - len(errors)},
    }
    if words is not None:
        properties["vocabulary"] = readable["vocabulary"]
    if errors:
        properties["halt"] = "\n".join(
            [f"statistics found {len(errors)} error anomalies in {examples_dir}"
             + (f" against the schema {config.schema}" if config.schema else "") + ":"]
            + [f"- {a['split']}/{a['feature']}: {a['description']}" for a in errors]
            + ["See anomalies.json in the statistics artifact; fix the data and re-run ingest"
               + (", or update the saved schema if the change is intended." if config.schema
                  else ".")]
        )
    return properties
