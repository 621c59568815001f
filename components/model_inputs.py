"""The one place that turns examples into a trained model's input batch.

Every consumer of a model (training, evaluate, quantize, report, serving) goes through here, so
padding and dtype rules cannot drift apart between them. The rules come from the model's
model.json:

- "image": uint8 [N, H, W, C] pixels, cast to float32 (the model normalises inside).
- "sequence": variable-length float32 [steps, C] series, padded or truncated to the model's
  length T by its "padding" policy: "pre" puts the padding before the series and, when a series
  is longer than T, keeps its last T steps (an LSTM reads the end last); "post" pads after the
  series and keeps its first T steps. Padding steps hold "padding_value" (0.0 when absent).
- "text": raw strings, tokenised by components/text_tokens.py with the model's own
  "vocabulary" (model.json: that is how the vocabulary is embedded in the model for every
  consumer) into int32 token ids [N, T], padded with id 0 and cut by the same "padding" rule.
  Rows that already are token ids (lists of ints, as a device or a client may send) are only
  padded or cut.

`prepare` works on numpy values; `pad_sequence_tensor` is the same rule as TensorFlow ops for
tf.data pipelines (TensorFlow is passed in, so importing this module stays cheap).
`input_spec` derives those model.json fields, and the normalisation statistics, from the
examples and the statistics artifact when the train stage builds a model.
"""

from __future__ import annotations

import json
import math
import pathlib
from typing import Any, Sequence

import numpy as np

from components import examples_io, text_tokens

PADDINGS = ("pre", "post")


def prepare(model_json: dict[str, Any], values) -> np.ndarray:
    """The model's input batch for `values`: float32 for images and variable-length sequences,
    int32 token ids for texts (raw strings, or token id lists)."""
    feature = model_json.get("input_feature", "image")
    shape = tuple(model_json["input_shape"])
    if feature == "image":
        batch = np.asarray(values)
        if batch.shape[1:] != shape:
            raise ValueError(
                f"images have shape {batch.shape[1:]} but the model takes {shape} "
                "(model.json input_shape); resize the images or retrain on this shape."
            )
        return batch.astype(np.float32, copy=False)
    if feature == "sequence":
        length, channels = shape
        return pad_sequences(values, length, channels, model_json.get("padding", "pre"),
                             model_json.get("padding_value", 0.0))
    if feature == "text":
        return prepare_text(model_json, values)
    raise ValueError(
        f"model.json input_feature is {feature!r}; expected 'image', 'sequence' or 'text'. Was "
        "the model written by the train stage of this version?"
    )


def prepare_text(model_json: dict[str, Any], values) -> np.ndarray:
    """int32 token ids [N, T]: raw strings are tokenised with model.json's vocabulary, rows
    of token ids (a device's or a client's) are checked against it; both are padded or cut."""
    (length,) = model_json["input_shape"]
    vocabulary = model_json.get("vocabulary")
    if not vocabulary:
        raise ValueError("model.json of a text model lacks its 'vocabulary' (the token list "
                         "the train stage embeds); re-run the train stage.")
    index = text_tokens.token_index(vocabulary)
    rows = []
    for number, row in enumerate(values):
        if isinstance(row, (str, bytes)):  # numpy's str_ and bytes_ are subclasses
            text = row.decode("utf-8") if isinstance(row, bytes) else str(row)
            rows.append(text_tokens.ids_of(text, index))
            continue
        ids = np.asarray(row)
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or (
                ids.size and (ids.min() < 0 or ids.max() >= len(vocabulary))):
            raise ValueError(
                f"text example {number} is neither a string nor a list of token ids in "
                f"0..{len(vocabulary) - 1} (the model's vocabulary); send raw text or ids.")
        rows.append(ids.tolist())
    return text_tokens.pad_ids(rows, int(length), model_json.get("padding", "pre"))


def pad_sequences(values, length: int, channels: int, padding: str = "pre",
                  padding_value: float | Sequence[float] = 0.0) -> np.ndarray:
    """float32 [N, length, channels] from N series of shape [steps, channels] (steps vary)."""
    _check_padding(padding)
    fill = np.broadcast_to(np.asarray(padding_value, dtype=np.float32), (channels,))
    batch = np.empty((len(values), length, channels), dtype=np.float32)
    batch[:] = fill
    for index, series in enumerate(values):
        series = np.asarray(series, dtype=np.float32)
        if series.ndim != 2 or series.shape[1] != channels:
            raise ValueError(
                f"sequence {index} has shape {series.shape}; the model takes [steps, "
                f"{channels}] (steps x channels). Check the channel count of the input."
            )
        kept = series[-length:] if padding == "pre" else series[:length]
        if padding == "pre":
            batch[index, length - len(kept):] = kept
        else:
            batch[index, :len(kept)] = kept
    return batch


def pad_sequence_tensor(tf, series, length: int, padding: str = "pre",
                        padding_value: float | Sequence[float] = 0.0):
    """The `pad_sequences` rule for one [steps, C] tensor inside a tf.data map."""
    _check_padding(padding)
    series = tf.convert_to_tensor(series, tf.float32)
    kept = series[-length:] if padding == "pre" else series[:length]
    missing = length - tf.shape(kept)[0]
    fill = tf.broadcast_to(tf.constant(padding_value, tf.float32), [missing, tf.shape(kept)[1]])
    padded = tf.concat([fill, kept] if padding == "pre" else [kept, fill], axis=0)
    return tf.ensure_shape(padded, [length, series.shape[-1]])


def input_spec(examples, statistics_dir, sequence_length: int | None = None,
               padding: str = "pre") -> dict[str, Any]:
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
    path = pathlib.Path(statistics_dir) / "statistics.json"
    try:
        stats = json.loads(path.read_text())["splits"]["train"]["features"][feature]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path}: cannot read splits.train.features.{feature} ({error!r}); the train stage "
            "normalises with it. Re-run the statistics stage on these examples."
        ) from error
    if feature == "image":
        mean, std = _finite(path, feature, stats, lambda value: float(value))
        return {"input_feature": "image",
                "input_shape": [int(size) for size in examples_io.input_shape(examples)],
                "input_dtype": "uint8", "normalization": {"mean": mean, "variance": std ** 2}}
    if feature == "sequence":
        _check_padding(padding)
        mean, std = _finite(path, feature, stats, lambda values: [float(v) for v in values])
        length = sequence_length or int(stats["length"]["max"])
        return {"input_feature": "sequence", "input_shape": [length, int(stats["channels"])],
                "input_dtype": "float32", "padding": padding, "padding_value": 0.0,
                "normalization": {"mean": mean, "variance": [value ** 2 for value in std]}}
    if feature == "text":
        _check_padding(padding)
        return text_spec(path, stats, sequence_length, padding)
    raise ValueError(
        f"{examples}: the input feature is {feature!r}; the train stage builds models for "
        "'image', 'sequence' and 'text' examples."
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


def _finite(path, feature: str, stats: dict, convert) -> tuple:
    """(mean, std) from a feature's statistics; every std must be finite and positive."""
    try:
        mean, std = convert(stats["mean"]), convert(stats["std"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: train {feature} statistics lack a numeric mean/std "
                         f"({error!r}); re-run the statistics stage.") from error
    stds = std if isinstance(std, list) else [std]
    means = mean if isinstance(mean, list) else [mean]
    if not stds or not all(math.isfinite(v) for v in means + stds) or min(stds) <= 0:
        raise ValueError(
            f"{path}: train {feature} statistics mean={mean}, std={std}; expected finite values "
            "and std > 0 (a constant input cannot be normalised). Check the ingested data."
        )
    return mean, std


def _check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}; set [train] padding "
                         "to 'pre' or 'post'.")
