"""Statistics: per-split statistics of an Examples dataset, its schema, and anomalies (Beam).

Each split's TFRecord shards are read with Beam, decoded with the dataset's own TFDS
features, and summarised exactly by one CombineFn (combine.py); for texts a second Beam
branch (vocabulary.py) counts lengths in tokens and, on the train split, computes the
vocabulary of text models (`vocabulary.txt` in the statistics artifact).

Outputs follow TFDV's formats (tensorflow_metadata DatasetFeatureStatisticsList and Schema)
so TFDV and Facets can read them, plus readable JSON. The package: combine.py (the Beam
sums), summary.py (readable per-split statistics and the statistics proto from the sums),
schema.py (inferring the schema from train or loading a saved one, and checking every split
against it for anomalies), vocabulary.py (the text branch).

TensorFlow, TFDS and Beam are imported inside functions so a cached pipeline does not pay
for importing them.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import pydantic

from edgepipe.components.shared import examples_io
from edgepipe.components.shared.beam_pipeline import create_pipeline
from edgepipe.components.statistics import combine, generation, unlabeled, vocabulary
from edgepipe.components.statistics.schema import (constant_columns, expectations,
                                                   find_anomalies, infer_schema, load_schema)
from edgepipe.components.statistics.summary import summarise, summarise_lengths, to_proto
from edgepipe.contracts import artifacts, storage, tasks, text_tokens
from edgepipe.pipeline.stage import ExistingPath, StageConfig
from edgepipe.pipeline.spec import StageResult, StageSpec



with warnings.catch_warnings():  # the key is `schema`, as users write it; BaseModel.schema()
    warnings.filterwarnings("ignore", message='Field name "schema"')  # is deprecated anyway

    class Config(StageConfig):
        # Set from [pipeline] task by the config loader (edgepipe.contracts.tasks).
        task: str = tasks.CLASSIFICATION.name
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
            10000, ge=3, le=10_000_000, description="Text: most entries of vocabulary.txt, computed on the "
            "train split, including [PAD] (id 0) and [UNK] (id 1); rarer tokens map to [UNK]. "
            "Generation: most characters, [START] and [UNK] included.")
        min_token_count: int = pydantic.Field(
            1, ge=1, description="Text: a token enters the vocabulary only when it occurs at "
            "least this often in the train split (generation: a character; rarer ones map to "
            "[UNK]).")
        unlabeled_drift_threshold: float = pydantic.Field(
            0.1, ge=0.0, le=1.0, description="Max L-infinity distance between train's and the "
            "unlabeled split's normalised input distribution (pixel values; lengths of "
            "sequences and texts) before a warning.")


# Tasks whose statistics are their own (their examples hold no label the stage describes).
RUNS = {"generation": generation.run}


# ---------------------------------------------------------------- the stage


def run(inputs, outputs, config: Config, context) -> StageResult:
    if config.task in RUNS:
        return RUNS[config.task](inputs, outputs, config, context)
    examples_dir = str(inputs["examples"].path)
    class_names = examples_io.class_names(examples_dir)
    target_names = examples_io.target_names(examples_dir)  # regression, else []
    feature = examples_io.input_feature(examples_dir)
    splits = examples_io.split_names(examples_dir)
    context.log.info("statistics: reading splits %s of %s (%s)", splits, examples_dir, feature)
    shape = examples_io.input_shape(examples_dir)
    channels = int(shape[-1]) if feature == "sequence" else 0
    sums_dir = storage.join(context.scratch_dir, "sums")  # a local path or a URI
    compute_sums(examples_dir, splits, feature, channels, sums_dir, config, context.runtime)
    rate = examples_io.sample_rate(examples_dir) if feature == "audio" else 0
    summaries, words = summarise_splits(sums_dir, splits, class_names, feature, channels,
                                        config, target_names, rate)
    if "train" not in summaries or summaries["train"]["num_examples"] == 0:
        raise ValueError(f"{examples_dir} has no training examples: the schema is inferred "
                         "from the train split; check the ingest stage's inputs.")
    schema = (load_schema(config.schema) if config.schema else
              infer_schema(summaries["train"]["features"], class_names,
                           config.label_shift_threshold))
    overlap = (unlabeled.read_overlap(storage.join(sums_dir, "overlap")) if unlabeled.UNLABELED in splits
               else None)
    anomalies = find_anomalies(summaries, class_names,
                               expectations(schema, config.label_shift_threshold))
    anomalies += unlabeled.anomalies(summaries, feature, overlap,
                                     config.unlabeled_drift_threshold)
    anomalies += constant_columns(summaries, inputs["examples"].properties.get("feature_names"))
    for anomaly in anomalies:
        context.log.warning("statistics: %(severity)s in %(split)s/%(feature)s: "
                            "%(description)s", anomaly)
    readable: dict[str, Any] = {"splits": summaries}
    if overlap is not None:
        readable["unlabeled_overlap"] = overlap
    if words is not None:
        readable["vocabulary"] = vocabulary.summary(words, config.vocabulary_size,
                                                    config.min_token_count)
    write(outputs, summaries, readable, anomalies, schema, words)
    return outcome(examples_dir, feature, summaries, readable, anomalies, config)


def compute_sums(examples_dir: str, splits: list[str], feature: str, channels: int,
                 sums_dir: str, config: Config, runtime) -> None:
    """One Beam pipeline over every split: <sums_dir>/<split>.json of raw sums (and, for
    texts, token lengths and the train split's vocabulary)."""
    import apache_beam as beam

    with create_pipeline(runtime) as pipeline:
        for split in splits:
            serialized = pipeline | f"Read{split.title()}" >> beam.io.ReadFromTFRecord(
                f"{examples_dir}/*-{split}.tfrecord-*-of-*")
            if feature == "text":  # token lengths, and the vocabulary of the train split
                _ = serialized | f"Text{split.title()}" >> vocabulary.TextStatistics(
                    examples_dir, combine._decode, storage.join(sums_dir, split),
                    config.vocabulary_size if split == "train" else None, config.min_token_count)
            _ = (
                serialized
                | f"Statistics{split.title()}" >> combine.ComputeSplitStatistics(
                    examples_dir, feature, channels)
                | f"ToJson{split.title()}" >> beam.Map(json.dumps)
                | f"Write{split.title()}" >> beam.io.WriteToText(
                    storage.join(sums_dir, split), file_name_suffix=".json",
                    shard_name_template="")
            )
        if unlabeled.UNLABELED in splits:
            unlabeled.FindOverlap(pipeline, examples_dir, splits, feature,
                                  storage.join(sums_dir, "overlap"))


def summarise_splits(sums_dir: str, splits: list[str], class_names: list[str],
                     feature: str, channels: int, config: Config,
                     target_names: list[str] = (),
                     sample_rate: int = 0) -> tuple[dict, list | None]:
    """(readable statistics per split, the text vocabulary or None) from the raw sums."""
    summaries = {split: summarise(json.loads(storage.read_text(
                                      storage.join(sums_dir, f"{split}.json"))),
                                  class_names, config.histogram_bins, feature, channels,
                                  target_names, sample_rate)
                 for split in splits}
    words = None
    if feature == "text":
        for split in splits:
            token_lengths, found = vocabulary.read_results(sums_dir, split)
            summaries[split]["features"]["text"]["tokens"] = summarise_lengths(
                token_lengths, config.histogram_bins)
            words = found if found is not None else words
    return summaries, words


def write(outputs, summaries: dict, readable: dict, anomalies: list, schema,
          words: list[str] | None) -> None:
    from google.protobuf import text_format

    statistics_dir = outputs["statistics"]  # a local folder or a URI
    storage.write_bytes(storage.join(statistics_dir, artifacts.STATISTICS_PROTO),
                        to_proto(summaries).SerializeToString())
    artifacts.write_statistics(statistics_dir, readable)
    artifacts.write_anomalies(statistics_dir, anomalies)
    storage.write_text(storage.join(outputs["schema"], artifacts.SCHEMA),
                       text_format.MessageToString(schema))
    if words is not None:
        text_tokens.write_vocabulary(
            storage.join(statistics_dir, text_tokens.VOCABULARY_FILE), words)


def outcome(examples_dir: str, feature: str, summaries: dict, readable: dict,
            anomalies: list, config: Config) -> StageResult:
    """The stage's properties; anomalies of severity error halt the pipeline."""
    errors = [anomaly for anomaly in anomalies if anomaly["severity"] == "error"]
    result: dict[str, Any] = {
        "num_examples": {split: summary["num_examples"] for split, summary in summaries.items()},
        "input_feature": feature,
        "schema": config.schema or "inferred from train",
        "anomalies": {"errors": len(errors), "warnings": len(anomalies) - len(errors)},
    }
    if "vocabulary" in readable:
        result["vocabulary"] = readable["vocabulary"]
    if "unlabeled_overlap" in readable:
        result["unlabeled"] = {"overlap": {key: readable["unlabeled_overlap"][key]
                                           for key in ("ids", "content")},
                               "drift": summaries["unlabeled"].get("drift")}
    halt = ""
    if errors:
        halt = "\n".join(
            [f"statistics found {len(errors)} error anomalies in {examples_dir}"
             + (f" against the schema {config.schema}" if config.schema else "") + ":"]
            + [f"- {a['split']}/{a['feature']}: {a['description']}" for a in errors]
            + ["See anomalies.json in the statistics artifact; fix the data and re-run ingest"
               + (", or update the saved schema if the change is intended." if config.schema
                  else ".")]
        )
    return StageResult(result, halt=halt)


SPEC = StageSpec(
    name="statistics", version=3, config=Config, run=run,
    inputs={"examples": "Examples"}, outputs={"statistics": "Statistics", "schema": "Schema"},
    # Beam reads the shards and every file goes through edgepipe.contracts.storage: on a
    # gs:// root the stage reads and writes the bucket directly.
    remote_io=True,
)
