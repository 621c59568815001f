"""Schema side of the statistics stage: infer, load, and check splits against a Schema.

The schema is a tensorflow_metadata Schema (TFDV's format, so TFDV and Facets can read it),
inferred from the train split's statistics or read from `[statistics] schema = path` (a
schema saved by an earlier run, maybe edited). Every split's readable statistics (see
summary.py) are checked against it: a feature of another kind, missing
values, a wrong image shape or number of channels, values outside a float_domain, unknown
labels are errors (the runner halts before training); a label distribution further from train's than the
schema's drift threshold is a warning.

Kept apart from the Beam computation in combine.py and stage.py because it works on the
finished summaries only. tensorflow_metadata and protobuf are imported inside functions, like TensorFlow
elsewhere, so a cached pipeline does not pay for importing them.
"""

from __future__ import annotations

import pathlib

from edgepipe.components.statistics import audio, objects, targets
from edgepipe.contracts import artifacts

LABELS = ("label", targets.FEATURE, objects.FEATURE)  # class labels, targets, or boxes


def infer_schema(train: dict, class_names: list[str], threshold: float):
    """Schema from train: the input feature's kind and shape, a categorical label 0..K-1 with
    its names, and the drift threshold of the label distribution."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    ident = schema.feature.add(name="id", type=schema_pb2.BYTES)
    ident.annotation.comment.append("Stable record id '<source file>:<index>'.")
    name = next(key for key in train if key not in (*LABELS, "id"))
    stats = train[name]
    # The types describe the decoded values, as the statistics do (an image is uint8 pixels
    # of a fixed shape, whatever its PNG encoding on disk): TFDV tools comparing the two agree.
    feature = schema.feature.add(name=name, type={
        "image": schema_pb2.INT, "sequence": schema_pb2.FLOAT,
        "audio": schema_pb2.FLOAT}.get(name, schema_pb2.BYTES))
    if name == "image":
        feature.int_domain.min, feature.int_domain.max = 0, 255
        feature.annotation.comment.append(
            f"uint8 image of shape {stats['shape']} (stored PNG-encoded).")
        for size in stats["shape"]:
            feature.shape.dim.add(size=int(size))
    elif name == "sequence":
        feature.annotation.comment.append(
            f"float32 series, steps x {stats['channels']} channels, flattened step-major. "
            "Add a float_domain {min, max} here to reject values outside it.")
        feature.annotation.tag.append(f"shape:-1,{stats['channels']}")
    elif name == "audio":
        audio.add_to_schema(feature, stats)
    else:
        feature.natural_language_domain.SetInParent()
    for added in (ident, feature):
        added.presence.min_fraction = 1.0
        if added is ident or name == "text":  # an image has its shape instead (one of them)
            added.value_count.min = added.value_count.max = 1
    if targets.FEATURE in train:  # regression
        targets.add_to_schema(schema, train[targets.FEATURE], threshold)
        return schema
    if objects.FEATURE in train:  # detection
        objects.add_to_schema(schema, class_names, threshold)
        return schema
    label = schema.feature.add(name="label", type=schema_pb2.INT)
    label.presence.min_fraction = 1.0
    label.value_count.min = label.value_count.max = 1
    label.int_domain.name, label.int_domain.is_categorical = "label", True
    label.int_domain.min, label.int_domain.max = 0, len(class_names) - 1
    label.annotation.comment.append("Class index; names in the string domain 'class_names'.")
    label.drift_comparator.infinity_norm.threshold = threshold
    schema.string_domain.add(name="class_names", value=class_names)
    return schema


def load_schema(path: str):
    """A saved Schema text proto (the file, or a schema artifact folder holding schema.pbtxt)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    file = pathlib.Path(path)
    file = file / artifacts.SCHEMA if file.is_dir() else file
    try:
        return text_format.Parse(file.read_text(), schema_pb2.Schema())
    except (OSError, text_format.ParseError) as error:
        raise ValueError(f"[statistics] schema = {file}: not a readable Schema text proto "
                         f"({error}); point it at the schema.pbtxt of an earlier run.") from None


def expectations(schema, default_threshold: float) -> dict:
    """What the checks need from a Schema proto."""
    features = {feature.name: feature for feature in schema.feature}
    name = next((key for key in ("image", "sequence", "text", "audio") if key in features),
                None)
    expected = {"feature": name, "shape": None, "low": None, "high": None,
                "class_names": [], "threshold": default_threshold}
    if name:
        if features[name].HasField("shape"):
            expected["shape"] = [int(dim.size) for dim in features[name].shape.dim]
        for tag in features[name].annotation.tag:  # sequences, and schemas saved before
            if tag.startswith("shape:"):
                expected["shape"] = [int(dim) for dim in tag[len("shape:"):].split(",")]
        if features[name].HasField("float_domain"):
            domain = features[name].float_domain
            expected["low"] = domain.min if domain.HasField("min") else None
            expected["high"] = domain.max if domain.HasField("max") else None
    for domain in schema.string_domain:
        if domain.name == "class_names":
            expected["class_names"] = list(domain.value)
    label = features.get("label", features.get("objects/label"))
    if label is not None and label.drift_comparator.HasField("infinity_norm"):
        expected["threshold"] = label.drift_comparator.infinity_norm.threshold
    expected["targets"] = targets.expectations(schema, default_threshold)
    return expected


def _value_anomalies(name: str, stats: dict, expected: dict, report) -> None:
    if name == "image" and expected["shape"]:
        other = {shape: count for shape, count in stats["shapes"].items()
                 if shape != "x".join(map(str, expected["shape"]))}
        if other:
            report("image", "error", f"image shapes {other} (shape: count) differ from "
                   f"the schema's {expected['shape']}")
    if name == "audio":
        audio.anomalies(stats, expected, report)
    if name == "sequence" and stats["num_steps"]:
        if expected["shape"] and stats["channels"] != expected["shape"][-1]:
            report("sequence", "error", f"{stats['channels']} channels, the schema expects "
                   f"{expected['shape'][-1]}")
        low, high = min(stats["min"]), max(stats["max"])
        if expected["low"] is not None and low < expected["low"]:
            report("sequence", "error", f"value {low:g} is below the schema's float_domain "
                   f"min {expected['low']:g} (out of range)")
        if expected["high"] is not None and high > expected["high"]:
            report("sequence", "error", f"value {high:g} is above the schema's float_domain "
                   f"max {expected['high']:g} (out of range)")


def constant_columns(summaries: dict, names: list[str] | None) -> list[dict]:
    """A warning naming the channels (a table's columns) whose value never changes in the
    train split, as TFDV flags them: normal data (the border pixels of a digit), which the
    model's normalisation leaves harmless (std taken as 1), but worth knowing."""
    stats = summaries.get("train", {}).get("features", {}).get("sequence")
    if not stats or not stats.get("num_steps"):
        return []
    constant = [index for index, std in enumerate(stats["std"]) if std == 0]
    if not constant:
        return []
    labels = [names[index] if names and index < len(names) else f"channel {index}"
              for index in constant]
    shown = ", ".join(map(repr, labels[:20])) + (", ..." if len(labels) > 20 else "")
    return [{"split": "train", "feature": "sequence", "severity": "warning",
             "columns": labels,
             "description": f"{len(constant)} of {stats['channels']} column(s) hold the same "
                            f"value in every training example: {shown}; they carry no "
                            "information (the model's normalisation takes their std as 1)"}]


def find_anomalies(summaries: dict, class_names: list[str], expected: dict) -> list[dict]:
    """Anomalies of each split against the schema's expectations: the input feature, then
    the class labels or (regression) the targets."""
    anomalies = []
    regression = targets.FEATURE in summaries["train"]["features"]
    for split, summary in summaries.items():
        def report(feature, severity, description):
            anomalies.append({"split": split, "feature": feature, "severity": severity,
                              "description": description})

        if summary["num_examples"] == 0:
            report("*", "warning", "the split is empty")
            continue
        (name,) = [key for key in summary["features"] if key not in LABELS]
        if expected["feature"] and name != expected["feature"]:
            report(name, "error", f"the examples hold a {name!r} feature but the schema "
                   f"expects {expected['feature']!r}")
        if summary["features"][name]["missing"]:
            report(name, "error", f"{summary['features'][name]['missing']} of "
                   f"{summary['num_examples']} examples have no value; the schema requires "
                   "one in every example")
        _value_anomalies(name, summary["features"][name], expected, report)
        if split == "unlabeled":  # no labels; its own checks are in unlabeled.py
            continue
        if objects.FEATURE in summary["features"]:
            objects.anomalies(split, summary["features"][objects.FEATURE],
                              summaries["train"]["features"][objects.FEATURE], class_names,
                              expected, report)
        elif regression:
            targets.anomalies(split, summary["features"][targets.FEATURE],
                              summaries["train"]["features"][targets.FEATURE],
                              expected["targets"], report)
        else:
            _label_anomalies(split, summary, summaries["train"], class_names, expected, report)
    return anomalies


def _label_anomalies(split: str, summary: dict, train: dict, class_names: list[str],
                     expected: dict, report) -> None:
    """Missing, out-of-domain and unknown labels are errors; a label distribution further
    from train's than the threshold is a warning."""
    label = summary["features"]["label"]
    known = expected["class_names"] or class_names
    if label["missing"]:
        report("label", "error", f"{label['missing']} of {summary['num_examples']} examples "
               "have no value; the schema requires one in every example")
    if label["out_of_domain"]:
        report("label", "error", f"labels outside the domain 0..{len(class_names) - 1}: "
               f"{label['out_of_domain']} (label: count)")
    unknown = {name: count for name, count in label["distribution"].items()
               if count and name not in known and name not in label["out_of_domain"]}
    if unknown:
        report("label", "error", f"unknown labels {unknown} (label: count); the schema's "
               f"class_names are {known}")
    if split != "train":
        train_labels = train["features"]["label"]["distribution"]
        train_total = max(sum(train_labels.values()), 1)
        total = max(sum(label["distribution"].values()), 1)
        distance, worst = max(
            (abs(label["distribution"].get(key, 0) / total
                 - train_labels.get(key, 0) / train_total), key)
            for key in set(label["distribution"]) | set(train_labels))
        if distance > expected["threshold"]:
            report("label", "warning", f"label distribution differs from train's by "
                   f"{distance:.3f} (L-infinity, class {worst!r}), more than "
                   f"the threshold {expected['threshold']:g}")
