"""The one place that turns examples into a trained model's input batch.

Every consumer of a model (training, evaluate, quantize, report, serving) goes through here, so
padding and dtype rules cannot drift apart between them. The rules come from the model's
model.json:

- "image": uint8 [N, H, W, C] pixels, cast to float32 (the model normalises inside). A model
  with "rgb_to_gray" (trained on gray images, taking RGB) gets gray [N, H, W, 1] images
  repeated into three channels; RGB images are fed as they are.
- "sequence": variable-length float32 [steps, C] series, padded or truncated to the model's
  length T by its "padding" policy: "pre" puts the padding before the series and, when a series
  is longer than T, keeps its last T steps (an LSTM reads the end last); "post" pads after the
  series and keeps its first T steps. Padding steps hold "padding_value" (0.0 when absent).
- "text": raw strings, tokenised by edgepipe.contracts.text_tokens with the model's own
  "vocabulary" (model.json: that is how the vocabulary is embedded in the model for every
  consumer) into int32 token ids [N, T], padded with id 0 and cut by the same "padding" rule.
  Rows that already are token ids (lists of ints, as a device or a client may send) are only
  padded or cut.
- "audio": float32 PCM samples in [-1, 1] at model.json's "sample_rate", one row per clip,
  padded with zeros after the clip or cut to the model's [samples] (as ingest does).

`prepare` works on numpy values (numpy only: the model server uses it too);
components/shared/input_pipeline.py states the sequence rule again as TensorFlow ops for
tf.data, and components/train/input_spec.py derives the model.json fields from the data.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from edgepipe.contracts import forecast_windows, text_tokens

PADDINGS = ("pre", "post")


def prepare(model_json: dict[str, Any], values) -> np.ndarray:
    """The model's input batch for `values`: float32 for images and variable-length sequences,
    int32 token ids for texts (raw strings, or token id lists)."""
    feature = model_json.get("input_feature", "image")
    shape = tuple(model_json["input_shape"])
    if feature == "image":
        batch = np.asarray(values)
        if model_json.get("rgb_to_gray") and batch.shape[1:] == (*shape[:-1], 1):
            batch = np.repeat(batch, 3, axis=-1)  # gray pixels as RGB: the model takes RGB
        if batch.shape[1:] != shape:
            raise ValueError(
                f"images have shape {batch.shape[1:]} but the model takes {shape} "
                "(model.json input_shape); resize the images or retrain on this shape."
            )
        return batch.astype(np.float32, copy=False)
    if feature == "sequence":
        length, channels = shape
        if model_json.get("forecast"):  # raw series get their mask channel (forecast_windows)
            values = [forecast_windows.with_mask(series, channels) for series in values]
        return pad_sequences(values, length, channels, model_json.get("padding", "pre"),
                             model_json.get("padding_value", 0.0))
    if feature == "text":
        return prepare_text(model_json, values)
    if feature == "audio":
        return prepare_audio(shape[0], values)
    raise ValueError(
        f"model.json input_feature is {feature!r}; expected 'image', 'sequence', 'text' or "
        "'audio'. Was "
        "the model written by the train stage of this version?"
    )


def prepare_audio(length: int, values) -> np.ndarray:
    """float32 [N, length] from N clips of samples (any length: zero-padded after or cut)."""
    batch = np.zeros((len(values), length), dtype=np.float32)
    for index, clip in enumerate(values):
        clip = np.asarray(clip, dtype=np.float32)
        if clip.ndim != 1 or not np.isfinite(clip).all():
            raise ValueError(f"audio clip {index} has shape {list(clip.shape)} or non-finite "
                             f"samples; send one list of float samples in [-1, 1] per clip "
                             f"(mono, {length} samples at the model's sample rate).")
        batch[index, :min(length, clip.size)] = clip[:length]
    return batch


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
    check_padding(padding)
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


def check_padding(padding: str) -> None:
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r} is not one of {PADDINGS}; set [train] padding "
                         "to 'pre' or 'post'.")
