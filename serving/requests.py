"""Parse and check a TensorFlow Serving predict request against the model's input spec.

The body is {"instances": [...]} (row format: one entry per example, a tensor or an object
{"<input name>": tensor}) or {"inputs": tensor | {"<input name>": tensor}} (columnar format),
with an optional "signature_name" that must be "serving_default". A text model takes, per
example, the raw text (a JSON string, tokenised by the server with the model's vocabulary) or
its T int token ids (already tokenised and padded, as the TFLite model takes them). Every
problem raises RequestError with the HTTP status and a message saying what was expected;
nothing here trusts the client.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import numpy as np

SIGNATURE = "serving_default"


class RequestError(Exception):
    """A request the service refuses: `status` is the HTTP status code (4xx)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """What one example must look like: from the version's model.json."""

    name: str  # "image" | "sequence" | "text" | "audio"
    shape: tuple[int, ...]  # one example, e.g. (28, 28, 1); for sequences (T, C); text (T,)
    dtype: str  # "uint8" | "float32" | "int32" (text token ids)
    variable_length: bool  # sequences: any number of steps, padded/truncated to T
    vocabulary_size: int = 0  # text: token ids are 0..vocabulary_size - 1
    # forecasting: clients send a series' last values (and covariates), without the mask
    # channel the model also reads (edgepipe.contracts.forecast_windows adds it)
    forecast: bool = False
    sample_rate: int = 0  # audio: Hz of the samples (float in [-1, 1], up to shape[0] a clip)

    @classmethod
    def from_model_json(cls, model_json: dict) -> "InputSpec":
        name = model_json.get("input_feature", "image")
        shape = tuple(int(size) for size in model_json["input_shape"])
        forecast = bool(model_json.get("forecast"))
        return cls(
            name=name,
            shape=(shape[0], shape[1] - 1) if forecast else shape,
            forecast=forecast,
            dtype=model_json.get("input_dtype", "uint8" if name == "image" else "float32"),
            variable_length=name == "sequence",
            # a text classifier lists its vocabulary; a generator names its characters.json
            vocabulary_size=(int(model_json.get("vocabulary_size", 0))
                             if isinstance(model_json.get("vocabulary"), str)
                             else len(model_json.get("vocabulary") or ())),
            sample_rate=int(model_json.get("sample_rate") or 0),
        )

    def describe(self) -> str:
        if self.name == "audio":
            return (f"1 to {self.shape[0]} float samples in [-1, 1] (mono, {self.sample_rate} "
                    "Hz; padded with zeros to the clip), or a WAV file as the whole body")
        if self.name == "text":
            return (f"a string (raw text) or {self.shape[0]} int token ids in "
                    f"0..{self.vocabulary_size - 1}")
        dims = ["steps", *map(str, self.shape[1:])] if self.variable_length else list(map(str, self.shape))
        return f"{self.dtype} [{', '.join(dims)}]"


@dataclasses.dataclass(frozen=True)
class Parsed:
    values: list  # one array per example (text: a string or ids), checked against the spec
    columnar: bool  # answer with "outputs" (columnar) instead of "predictions" (row)
    # per example, the letterbox of an encoded image ({"b64": ...}; None for pixel arrays):
    # a detector's answer maps its boxes back into the original image through it
    letterboxes: tuple = ()


# The JSON guard, run on the raw bytes before json.loads (which is recursive: 100,000 nested
# lists end in RecursionError, and it reads true/false as bools that numpy turns into 1/0).
# Escape pairs (\" \\ ...) are dropped first; then every remaining quote delimits a string,
# and a string is "[^"]*": both passes are linear even on hostile input. With strings gone,
# brackets, quotes and words inside a text model's raw text neither nest nor count as literals.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')
_LITERALS = (b"true", b"false", b"null")
_NOT_BRACKET = bytes(byte for byte in range(256) if byte not in b"[]{}")
_NESTING = np.zeros(256, dtype=np.int8)
_NESTING[list(b"[{")] = 1
_NESTING[list(b"]}")] = -1
EXPECTED_BODY = "expected {\"instances\": [...]} or {\"inputs\": ...}"


def nesting_depth(skeleton: bytes) -> int:
    """Deepest nesting of a bytes string holding only []{} characters (one numpy cumsum)."""
    if not skeleton:
        return 0
    return int(np.cumsum(_NESTING[np.frombuffer(skeleton, dtype=np.uint8)], dtype=np.int32).max())


def _check_raw_json(body: bytes, max_depth: int) -> None:
    """400 for true/false/null outside strings and for nesting deeper than max_depth, found
    at C speed on the raw bytes before any parse (about 10 us for a 28x28 image request)."""
    without_strings = body
    if b'"' in body:
        if b"\\" in body:
            without_strings = _ESCAPE.sub(b"", body)
        without_strings = _STRING.sub(b'""', without_strings)
    for literal in _LITERALS:
        if literal in without_strings:
            raise RequestError(400, f"The request body holds the literal {literal.decode()}: tensors "
                               "hold numbers (or strings for a text model), never true, false or null; "
                               f"{EXPECTED_BODY}.")
    depth = nesting_depth(without_strings.translate(None, _NOT_BRACKET))
    if depth > max_depth:
        raise RequestError(400, f"The request body nests {depth} levels deep; at most {max_depth} are "
                           f"accepted (a predict request needs the tensor's rank + 3); {EXPECTED_BODY}.")


def _refuse_constant(name: str):
    raise RequestError(400, f"The request body holds {name}, which is not a finite number; send "
                       "finite numbers.")


def parse_body(body: bytes, max_depth: int = 16) -> dict:
    """The request object of a predict body, or RequestError(400) saying what is wrong."""
    _check_raw_json(body, max_depth)
    try:
        request = json.loads(body.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise RequestError(400, "The request body is not UTF-8 text: send a JSON object.") from None
    except json.JSONDecodeError as error:
        raise RequestError(
            400, f"The request body is not valid JSON ({error.msg} at line {error.lineno} column "
            f"{error.colno}); {EXPECTED_BODY}."
        ) from None
    except RecursionError:  # unreachable after the depth check; kept as a backstop
        raise RequestError(400, f"The request body nests too deeply; {EXPECTED_BODY}.") from None
    except ValueError as error:  # an integer of more than 4,300 digits (int's own limit)
        raise RequestError(400, "The request body holds a number that cannot be read "
                           f"({str(error)[:80]}); send numbers of the tensor's dtype, e.g. "
                           "uint8 0..255.") from None
    if not isinstance(request, dict):
        raise RequestError(
            400, f"The request body is a JSON {type(request).__name__}; expected an object "
            "{\"instances\": [...]} or {\"inputs\": ...}."
        )
    return request


def parse_predict(request: dict, spec: InputSpec, max_instances: int) -> Parsed:
    signature = request.get("signature_name", SIGNATURE)
    if signature != SIGNATURE:
        raise RequestError(400, f"Unknown signature_name {signature!r}: this model has only {SIGNATURE!r}.")
    unknown = sorted(set(request) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(400, f"Unknown request keys {unknown}; expected \"instances\" or \"inputs\" (and optionally \"signature_name\").")
    if ("instances" in request) == ("inputs" in request):
        raise RequestError(400, "A predict request has exactly one of \"instances\" (row format) or \"inputs\" (columnar format).")
    columnar = "inputs" in request
    if columnar:
        batch = _unwrap_named(request["inputs"], spec, "inputs")
        if not isinstance(batch, list):
            raise RequestError(400, f"\"inputs\" must hold a list of examples, each {spec.describe()}; got a {type(batch).__name__}.")
        rows = batch
    else:
        rows = request["instances"]
        if not isinstance(rows, list):
            raise RequestError(400, f"\"instances\" must be a list of examples, each {spec.describe()}; got a {type(rows).__name__}.")
        rows = [_unwrap_named(row, spec, f"instances[{index}]") for index, row in enumerate(rows)]
    if not rows:
        raise RequestError(400, "The request holds no examples; send at least one.")
    if len(rows) > max_instances:
        raise RequestError(413, f"The request holds {len(rows)} examples; at most {max_instances} are accepted per request: split the batch.")
    examples = [_example(row, spec, index) for index, row in enumerate(rows)]
    return Parsed([value for value, _ in examples], columnar,
                  tuple(where for _, where in examples))


def _unwrap_named(value, spec: InputSpec, where: str):
    if isinstance(value, dict) and set(value) == {"b64"} and spec.name == "image":
        return value  # an encoded image, decoded by _example
    if isinstance(value, dict):
        if set(value) != {spec.name}:
            raise RequestError(400, f"{where} names inputs {sorted(value)}; this model has one input, {spec.name!r} ({spec.describe()}).")
        return value[spec.name]
    return value


def _text_example(row, spec: InputSpec, index: int):
    """A raw string as it is, or exactly T token ids of the vocabulary as int32."""
    if isinstance(row, str):
        return row
    if not isinstance(row, list) or not all(
            isinstance(value, int) and not isinstance(value, bool) for value in row):
        raise RequestError(400, f"Example {index} is a {type(row).__name__}; expected {spec.describe()}.")
    if len(row) != spec.shape[0]:
        raise RequestError(400, f"Example {index} holds {len(row)} token ids; expected {spec.describe()} (padded by the model's rule), or send the raw text.")
    if row and (min(row) < 0 or max(row) >= spec.vocabulary_size):
        raise RequestError(400, f"Example {index} holds token ids in [{min(row)}, {max(row)}]; expected {spec.describe()}.")
    return np.asarray(row, dtype=np.int32)


def parse_wav(body: bytes, spec: InputSpec) -> Parsed:
    """A WAV body (an audio model's one clip): decoded, mixed to mono and resampled to the
    model's rate (edgepipe.contracts.wav), at most one clip long."""
    from edgepipe.contracts import wav

    if spec.name != "audio":
        raise RequestError(400, f"The body is a WAV file but this model takes {spec.describe()}; "
                           f"{EXPECTED_BODY}.")
    try:
        samples, rate = wav.decode(body)
        samples = wav.resample(samples, rate, spec.sample_rate)
    except ValueError as error:
        raise RequestError(400, f"The WAV body cannot be read: {error}.") from None
    if samples.size == 0 or samples.size > spec.shape[0] * 1.01:
        raise RequestError(400, f"The WAV body holds {samples.size / spec.sample_rate:.3f} s of "
                           f"audio; expected one clip of at most {spec.shape[0]} samples "
                           f"({spec.shape[0] / spec.sample_rate:g} s).")
    return Parsed([samples[:spec.shape[0]]], False)


def _audio_example(row, spec: InputSpec, index: int) -> np.ndarray:
    try:
        array = np.asarray(row)
    except ValueError:
        raise RequestError(400, f"Example {index} is a ragged list; expected {spec.describe()}.") from None
    if array.ndim != 1 or not 1 <= array.size <= spec.shape[0] or array.dtype.kind not in "iuf" \
            or array.dtype == bool:
        raise RequestError(400, f"Example {index} has shape {list(array.shape)} ({_kind(array)}); expected {spec.describe()}.")
    if not np.all(np.isfinite(array)) or np.abs(array).max() > 1.0:
        raise RequestError(400, f"Example {index} holds samples outside [-1, 1] or non-finite ones; "
                           "send float samples (16-bit PCM / 32768).")
    return array.astype(np.float32)


def _example(row, spec: InputSpec, index: int) -> tuple:
    """(the checked example, the letterbox of an encoded image or None)."""
    if isinstance(row, dict) and set(row) == {"b64"} and spec.name == "image":
        from edgepipe.serving import images

        if not isinstance(row["b64"], str):
            raise RequestError(400, f"Example {index}: \"b64\" must be a base64 string.")
        try:
            return images.decode(row["b64"], spec.shape)
        except images.ImageError as error:
            raise RequestError(400, f"Example {index}: {error}.") from None
    return _pixels(row, spec, index), None


def _pixels(row, spec: InputSpec, index: int) -> np.ndarray:
    if spec.name == "text":
        return _text_example(row, spec, index)
    if spec.name == "audio":
        return _audio_example(row, spec, index)
    try:
        array = np.asarray(row)
    except ValueError:  # ragged nested lists
        raise RequestError(400, f"Example {index} is a ragged list; expected a tensor of {spec.describe()}.") from None
    if spec.forecast and array.ndim == 1 and spec.shape[1] == 1:  # a plain list of values
        array = array[:, None]
    shape_ok = (
        array.ndim == len(spec.shape) and array.shape[0] >= 1 and array.shape[1:] == spec.shape[1:]
        if spec.variable_length else array.shape == spec.shape
    )
    if not shape_ok:
        raise RequestError(400, f"Example {index} has shape {list(array.shape)}; expected {spec.describe()}.")
    if array.dtype == bool or array.dtype.kind not in "iuf":
        raise RequestError(400, f"Example {index} holds {_kind(array)} values; expected {spec.describe()} numbers.")
    if spec.dtype == "uint8":
        if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
            raise RequestError(400, f"Example {index} holds fractional numbers; expected uint8 integers 0..255.")
        if array.min() < 0 or array.max() > 255:
            raise RequestError(400, f"Example {index} has values in [{_num(array.min())}, {_num(array.max())}]; expected uint8 integers 0..255.")
        return array.astype(np.uint8)
    if not np.all(np.isfinite(array)):
        raise RequestError(400, f"Example {index} holds NaN or infinite values; expected finite {spec.dtype} numbers.")
    return array.astype(np.float32)


def _kind(array: np.ndarray) -> str:
    return {"b": "boolean", "U": "string", "S": "string", "O": "mixed or null"}.get(array.dtype.kind, array.dtype.name)


def _num(value) -> str:
    value = float(value)
    return str(int(value)) if math.isfinite(value) and value == int(value) else str(value)
