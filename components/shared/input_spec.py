"""What the train stage's model takes: the model.json fields derived from the data.

`input_spec` reads the Examples and Statistics artifacts and returns the input description
every consumer of the model follows (edgepipe.contracts.model_inputs applies it), plus the
normalisation statistics (images, sequences) or the vocabulary (text) the builder needs.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

from edgepipe.components.shared import examples_io
from edgepipe.contracts import artifacts, model_inputs, text_tokens


def input_spec(examples, statistics_dir, sequence_length: int | None = None,
               padding: str = "pre", input_color: str = "stored") -> dict[str, Any]:
    """The model.json fields that say what the model takes, plus "normalization" (images and
    sequences; a text model's embedding takes the vocabulary instead).

    Images: the stored shape, uint8, a scalar pixel mean/variance. Sequences: [T, C] with T =
    `sequence_length` or the longest training sequence, float32, per-channel mean/variance,
    the padding policy and its value (0.0, the raw value clients pad with too). Text: [T]
    int32 token ids with T = `sequence_length` or the longest training text in tokens (at
    most MAX_DEFAULT_TEXT_LENGTH), the padding policy, the vocabulary (vocabulary.txt of the
    statistics artifact) and the tokenizer's description.
    """
    feature = examples_io.input_feature(examples)
    path = pathlib.Path(statistics_dir) / artifacts.STATISTICS
    try:
        stats = artifacts.read_statistics(statistics_dir)["splits"]["train"]["features"][feature]
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: cannot read splits.train.features.{feature} ({error!r}); the train stage "
            "normalises with it. Re-run the statistics stage on these examples."
        ) from error
    if feature == "image":
        mean, std = _finite(path, feature, stats, lambda value: float(value))
        spec = {"input_feature": "image",
                "input_shape": [int(size) for size in examples_io.input_shape(examples)],
                "input_dtype": "uint8", "normalization": {"mean": mean, "variance": std ** 2}}
        return _color(spec, input_color, examples) if input_color == "rgb" else spec
    if feature == "sequence":
        model_inputs.check_padding(padding)
        mean, std = _finite(path, feature, stats, lambda values: [float(v) for v in values])
        length = sequence_length or int(stats["length"]["max"])
        return {"input_feature": "sequence", "input_shape": [length, int(stats["channels"])],
                "input_dtype": "float32", "padding": padding, "padding_value": 0.0,
                "normalization": {"mean": mean, "variance": [value ** 2 for value in std]}}
    if feature == "text":
        model_inputs.check_padding(padding)
        return text_spec(path, stats, sequence_length, padding)
    if feature == "audio":  # float32 samples in [-1, 1]; the front end is inside the model
        return {"input_feature": "audio",
                "input_shape": [int(size) for size in examples_io.input_shape(examples)],
                "input_dtype": "float32", "sample_rate": examples_io.sample_rate(examples)}
    raise ValueError(
        f"{examples}: the input feature is {feature!r}; the train stage builds models for "
        "'image', 'sequence', 'text' and 'audio' examples."
    )


# Default text length: the longest training text in tokens, but at most this many tokens
# (a few very long texts would otherwise make every example mostly padding).
MAX_DEFAULT_TEXT_LENGTH = 200


def text_spec(path: pathlib.Path, stats: dict, sequence_length: int | None,
              padding: str) -> dict[str, Any]:
    """Text: [T] int32 token ids; the vocabulary from the statistics artifact."""
    vocabulary_path = path.parent / text_tokens.VOCABULARY_FILE
    vocabulary = text_tokens.read_vocabulary(vocabulary_path)
    if sequence_length is None:
        longest = (stats.get("tokens") or {}).get("max")
        if longest is None:
            raise ValueError(f"{path}: splits.train.features.text.tokens.max is missing (the "
                             "token lengths); re-run the statistics stage of this version, or "
                             "set [train] sequence_length.")
        sequence_length = max(1, min(int(longest), MAX_DEFAULT_TEXT_LENGTH))
    return {"input_feature": "text", "input_shape": [int(sequence_length)],
            "input_dtype": "int32", "padding": padding, "vocabulary": vocabulary,
            "tokenizer": text_tokens.describe(vocabulary, sequence_length, padding)}


def _color(spec: dict[str, Any], input_color: str, examples) -> dict[str, Any]:
    """An image model taking RGB: gray examples are repeated into 3 channels for it."""
    *size, channels = spec["input_shape"]
    if channels not in (1, 3):
        raise ValueError(f"[train] input_color = 'rgb': the images in {examples} have "
                         f"{channels} channels; RGB input is built from 1 (gray) or 3 channels.")
    return {**spec, "input_shape": [*size, 3], "input_color": input_color,
            "rgb_to_gray": channels == 1}


def _finite(path, feature: str, stats: dict, convert) -> tuple:
    """(mean, std) from a feature's statistics. A constant channel (std 0: a border pixel
    column that is always 0) is normal data: its std is taken as 1, so normalisation only
    shifts it. A non-finite value is an error naming the channels, never the whole arrays."""
    try:
        mean, std = convert(stats["mean"]), convert(stats["std"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: train {feature} statistics lack a numeric mean/std "
                         f"({error!r}); re-run the statistics stage.") from error
    stds = std if isinstance(std, list) else [std]
    means = mean if isinstance(mean, list) else [mean]
    bad = [index for index, (m, s) in enumerate(zip(means, stds))
           if not (math.isfinite(m) and math.isfinite(s)) or s < 0]
    if not stds or bad:
        shown = ", ".join(f"channel {index} (mean {means[index]}, std {stds[index]})"
                          for index in bad[:10])
        raise ValueError(
            f"{path}: train {feature} statistics are not finite for {len(bad)} of {len(stds)} "
            f"channel(s): {shown or 'none given'}{', ...' if len(bad) > 10 else ''}. Check the "
            "ingested data (a NaN or infinite value), then re-run ingest and statistics.")
    stds = [value if value > 0 else 1.0 for value in stds]
    return mean, (stds if isinstance(std, list) else stds[0])


def label_spec(examples, statistics_dir, task_name: str, model: str = "") -> dict[str, Any]:
    """The model.json fields that say what the model returns: the task (the one `model`
    makes of it: detection with fomo is centroids), and its class names (classification,
    detection) or its target names and their normalisation (regression; the model returns
    values in the data's units, see components/shared/task_heads.py)."""
    from edgepipe.components.shared import task_heads
    from edgepipe.contracts import tasks

    task = tasks.get(task_name)
    if task.name in task_heads.SPECS:  # its input too: it replaces input_spec's fields
        return task_heads.SPECS[task.name](examples, statistics_dir)
    label = examples_io.label_feature(examples)
    if label != task.label_feature:
        raise ValueError(
            f"{examples}: the examples hold {label!r} labels but [pipeline] task = "
            f"{task.name!r} learns {task.label_feature!r}; re-run ingest with this task.")
    if task.label in ("class", "boxes"):  # boxes: each box has a class of class_names
        return {"task": tasks.for_model(task.name, model).name,
                "class_names": examples_io.class_names(examples)}
    names = examples_io.target_names(examples)
    path = pathlib.Path(statistics_dir) / artifacts.STATISTICS
    return {"task": task.name, "class_names": [], "target_names": names,
            "target_normalization": task_heads.target_normalization(
                artifacts.read_statistics(statistics_dir), names, path)}
