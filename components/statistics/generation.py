"""The statistics stage's generation piece: a corpus's character statistics, its vocabulary
and the schema that checks it (Beam).

One Beam pass per split counts the documents and every character (a CombinePerKey: it scales
out; only the per-character counts meet in one place). The train split's counts give the
character vocabulary (edgepipe.contracts.characters: [START], [UNK], then the characters seen
at least `[statistics] min_token_count` times), written as characters.json. Validation and
test are scored against it: how many of their characters the model will see as [UNK] (a
character seen only in test is one of them).

The schema (tensorflow_metadata) declares the text feature with the vocabulary as its string
domain. With a saved schema (`[statistics] schema`), a vocabulary that differs from its domain
is an error anomaly: a model trained on other characters would read this corpus differently.
"""

from __future__ import annotations

import collections
import json
from typing import Any

from edgepipe.components.shared import examples_io
from edgepipe.components.shared.beam_pipeline import create_pipeline
from edgepipe.contracts import artifacts, characters, storage
from edgepipe.pipeline.spec import StageResult

DOMAIN = "characters"
# Share of a held-out split's characters outside the vocabulary that earns a warning.
UNKNOWN_WARNING = 0.01


def _text(serialized: bytes) -> str:
    import tensorflow as tf

    value = tf.train.Example.FromString(serialized).features.feature["text"].bytes_list.value
    return value[0].decode("utf-8") if value else ""


def _characters(text: str):
    return ((char, 1) for char in text)


def _summary(counts: list[tuple[str, int]], lengths: list[int]) -> dict[str, Any]:
    total = sum(count for _, count in counts)
    return {"num_examples": len(lengths), "characters": total,
            "counts": dict(sorted(counts, key=lambda item: (-item[1], item[0]))),
            "document_length": {"min": min(lengths, default=0), "max": max(lengths, default=0),
                                "mean": total / len(lengths) if lengths else 0.0}}


def compute_counts(examples_dir: str, splits: list[str], sums_dir: str, runtime) -> None:
    """<sums_dir>/<split>.json: documents, characters, per-character counts, lengths."""
    import apache_beam as beam

    with create_pipeline(runtime) as pipeline:
        for split in splits:
            texts = (pipeline
                     | f"Read{split.title()}" >> beam.io.ReadFromTFRecord(
                         f"{examples_dir}/*-{split}.tfrecord-*-of-*")
                     | f"Text{split.title()}" >> beam.Map(_text))
            counts = (texts | f"Chars{split.title()}" >> beam.FlatMap(_characters)
                      | f"Count{split.title()}" >> beam.CombinePerKey(sum)
                      | f"Gather{split.title()}" >> beam.combiners.ToList())
            lengths = (texts | f"Length{split.title()}" >> beam.Map(len)
                       | f"Lengths{split.title()}" >> beam.combiners.ToList())
            _ = (counts
                 | f"Summary{split.title()}" >> beam.Map(
                     _summary, beam.pvalue.AsSingleton(lengths))
                 | f"Json{split.title()}" >> beam.Map(json.dumps)
                 | f"Write{split.title()}" >> beam.io.WriteToText(
                     storage.join(sums_dir, split), file_name_suffix=".json",
                     shard_name_template=""))


def unknown_share(counts: dict[str, int], vocabulary: list[str]) -> tuple[int, dict[str, int]]:
    """(characters outside the vocabulary, the most frequent of them)."""
    known = set(vocabulary[len(characters.RESERVED):])
    unknown = {char: count for char, count in counts.items() if char not in known}
    top = dict(sorted(unknown.items(), key=lambda item: (-item[1], item[0]))[:10])
    return sum(unknown.values()), top


def infer_schema(vocabulary: list[str], units: str):
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    domain = schema.string_domain.add(name=DOMAIN)
    domain.value.extend(vocabulary[len(characters.RESERVED):])
    feature = schema.feature.add(name="text", type=schema_pb2.BYTES, domain=DOMAIN)
    feature.presence.min_fraction = 1.0
    feature.value_count.min = feature.value_count.max = 1
    feature.annotation.tag.append(f"units:{units}")
    feature.annotation.comment.append(
        "Documents of a generation corpus; their characters (besides [START] and [UNK]) are "
        "the string domain 'characters' (edgepipe.contracts.characters).")
    return schema


def schema_anomalies(schema, vocabulary: list[str]) -> list[dict[str, Any]]:
    """An error when the vocabulary differs from a saved schema's character domain."""
    domains = {domain.name: list(domain.value) for domain in schema.string_domain}
    expected = domains.get(DOMAIN)
    if expected is None:
        return [{"split": "train", "feature": "text", "severity": "error",
                 "description": f"the saved schema has no string domain {DOMAIN!r}: it was not "
                                "written for a generation corpus"}]
    found = vocabulary[len(characters.RESERVED):]
    if found == expected:
        return []
    new, gone = sorted(set(found) - set(expected)), sorted(set(expected) - set(found))
    return [{"split": "train", "feature": "text", "severity": "error",
             "description": f"the character vocabulary differs from the schema's: new "
                            f"{new[:20]!r}, missing {gone[:20]!r}"
                            + ("" if new or gone else ", order changed (other counts)")}]


def run(inputs, outputs, config, context) -> StageResult:
    from google.protobuf import text_format

    from edgepipe.components.statistics.schema import load_schema

    examples_dir = str(inputs["examples"].path)
    units = inputs["examples"].properties.get("units", "chars")
    splits = [split for split in examples_io.split_names(examples_dir)]
    sums_dir = storage.join(context.scratch_dir, "sums")
    compute_counts(examples_dir, splits, sums_dir, context.runtime)
    summaries = {split: json.loads(storage.read_text(storage.join(sums_dir, f"{split}.json")))
                 for split in splits}
    train = summaries.get("train")
    if not train or not train["characters"]:
        raise ValueError(f"{examples_dir}: the train split holds no text, so there is no "
                         "character vocabulary; check the corpus ([ingest] train) and its "
                         "documents setting.")
    vocabulary = characters.vocabulary_from_counts(train["counts"], config.min_token_count,
                                                   config.vocabulary_size)
    anomalies = []
    for split, summary in summaries.items():
        unknown, top = unknown_share(summary["counts"], vocabulary)
        summary["unknown_characters"] = unknown
        summary["unknown_top"] = top
        if split != "train" and summary["characters"] and \
                unknown / summary["characters"] > UNKNOWN_WARNING:
            anomalies.append({"split": split, "feature": "text", "severity": "warning",
                              "description": f"{unknown} of {summary['characters']} characters "
                                             f"are outside the train vocabulary (e.g. "
                                             f"{list(top)[:5]!r}); the model reads them as "
                                             "[UNK]"})
    schema = load_schema(config.schema) if config.schema else infer_schema(vocabulary, units)
    anomalies += schema_anomalies(schema, vocabulary)
    for anomaly in anomalies:
        context.log.warning("statistics: %(severity)s in %(split)s/%(feature)s: "
                            "%(description)s", anomaly)
    vocabulary_summary = {"file": characters.FILE, "size": len(vocabulary), "units": units,
                          "min_token_count": config.min_token_count, "computed_on": "train",
                          "reserved": {characters.START: characters.START_ID,
                                       characters.UNK: characters.UNK_ID}}
    statistics_dir = outputs["statistics"]
    artifacts.write_statistics(statistics_dir, {"splits": summaries,
                                                "vocabulary": vocabulary_summary})
    artifacts.write_anomalies(statistics_dir, anomalies)
    characters.write(storage.join(statistics_dir, characters.FILE), vocabulary, units,
                     collections.Counter(train["counts"]), config.min_token_count)
    storage.write_text(storage.join(outputs["schema"], artifacts.SCHEMA),
                       text_format.MessageToString(schema))
    errors = [anomaly for anomaly in anomalies if anomaly["severity"] == "error"]
    halt = "\n".join([f"statistics found {len(errors)} error anomalies in {examples_dir}:"]
                     + [f"- {a['split']}/{a['feature']}: {a['description']}" for a in errors]
                     ) if errors else ""
    return StageResult({
        "num_examples": {split: summary["num_examples"] for split, summary in summaries.items()},
        "characters": {split: summary["characters"] for split, summary in summaries.items()},
        "input_feature": "text", "schema": config.schema or "inferred from train",
        "anomalies": {"errors": len(errors), "warnings": len(anomalies) - len(errors)},
        "vocabulary": vocabulary_summary}, halt=halt)
