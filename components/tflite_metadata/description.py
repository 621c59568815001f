"""What the standard metadata of a model says: plain values, no flatbuffer, no task.

A task (classification, regression, ...) turns its model into a `ModelDescription`: one input
description per input tensor and one output description per output tensor, in the model's
order. A new kind of tensor (an audio clip, a detection's boxes) is a new dataclass here and
one builder in writer.py; the task only fills in the description.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

# MediaPipe's (and the Task Library's) RegexTokenizer SPLITS the text on this RE2 pattern; the
# pieces are the tokens. It yields exactly the tokens of edgepipe.contracts.text_tokens
# (findall of \w+(?:'\w+)* on lowercased text): a delimiter is any run of characters outside
# [letters, digits, _, '], or an apostrophe that is not between two word characters. RE2 has no
# look-around, hence the alternatives: apostrophes after a delimiter, before one, doubled, at
# the start of what is left (RE2's ^ after a match) or at the end of the text. \pL\pN_ rather
# than \w: RE2's \w is ASCII-only, Python's is Unicode. The tokenizer does not lowercase: the
# caller must (docs/use-in-an-app.md).
DELIM_REGEX = r"[^\pL\pN_']+'*|'+[^\pL\pN_']+|''+|^'+|'+$"


@dataclasses.dataclass(frozen=True)
class ImageInput:
    """An image tensor [1, H, W, C]: float tensor = (pixel - mean) / std, pixel in 0..255.

    One value, or one per channel (MediaPipe accepts one for all channels only). A quantized
    (uint8/int8) tensor holds the pixels by its own quantization, which the description states.
    """

    mean: Sequence[float]
    std: Sequence[float]
    color_space: str = "RGB"  # or "GRAYSCALE"
    name: str = "image"
    description: str = "Input image to be classified."


@dataclasses.dataclass(frozen=True)
class AudioInput:
    """A waveform tensor of samples captured at `sample_rate` Hz with `channels` channels."""

    sample_rate: int
    channels: int = 1
    name: str = "audio"
    description: str = "Input audio clip."


@dataclasses.dataclass(frozen=True)
class FeatureInput:
    """A generic feature tensor (a sequence [1, T, C], say), with its value range if known."""

    value_range: tuple[float, float] | None = None
    name: str = "sequence"
    description: str = "Input sequence to be classified."


@dataclasses.dataclass(frozen=True)
class TextInput:
    """int32 token ids [1, T] from a RegexTokenizer with `vocabulary` (id = list position)."""

    vocabulary: Sequence[str]
    delim_regex_pattern: str = DELIM_REGEX
    vocabulary_file: str = "vocab.txt"
    name: str = "input_text"
    description: str = ("Token ids of the lowercased input text; the RegexTokenizer splits "
                        "on delim_regex_pattern and pads after the tokens.")


@dataclasses.dataclass(frozen=True)
class ClassScores:
    """One score per class, in the order of `labels` (packed as a TENSOR_AXIS_LABELS file)."""

    labels: Sequence[str]
    labels_file: str = "labels.txt"
    name: str = "probabilities"
    description: str = "Probabilities of the labels respectively."


@dataclasses.dataclass(frozen=True)
class Values:
    """Real values in their own units (a regression's targets), one per name in `names`.

    The schema has no field for units: they go into the tensor's description beside the names.
    `value_range` (low, high), if known, becomes the tensor's stats.
    """

    names: Sequence[str]
    units: Sequence[str] = ()
    value_range: tuple[float, float] | None = None
    name: str = "values"
    description: str = ""


@dataclasses.dataclass(frozen=True)
class DetectionOutput:
    """One of the four outputs of TFLite_Detection_PostProcess, by `role`: "locations"
    [1, K, 4] boxes (ymin, xmin, ymax, xmax as fractions of the input), "classes" [1, K]
    (class indices into `labels`, packed as TENSOR_VALUE_LABELS), "scores" [1, K], "count"
    [1]. The names are those MediaPipe's ObjectDetector looks outputs up by."""

    role: str
    labels: Sequence[str] = ()
    labels_file: str = "labels.txt"
    description: str = ""

    @property
    def name(self) -> str:
        return {"locations": "location", "classes": "category", "scores": "score",
                "count": "number of detections"}[self.role]


Input = Union[ImageInput, AudioInput, FeatureInput, TextInput]
Output = Union[ClassScores, Values, DetectionOutput]


@dataclasses.dataclass(frozen=True)
class ModelDescription:
    """The whole model: who made it, then its inputs and outputs in the model's order."""

    name: str
    inputs: Sequence[Input]
    outputs: Sequence[Output]
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
