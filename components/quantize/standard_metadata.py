"""The standard TFLite metadata (the `TFLITE_METADATA` of tflite-support's metadata schema).

What MediaPipe Tasks, the TFLite Task Library, Android Studio's model import and Netron read:
the model's name, description, version, author and license; one `TensorMetadata` per input
(an image: its colour space, normalisation options and value range; a sequence or any other
feature: its value range; text: a RegexTokenizer process unit with the vocabulary as an
associated file) and per output (the class names as a TENSOR_AXIS_LABELS file); the associated
files packed into the .tflite as an uncompressed zip (metadata_flatbuffer.py stores it all).

The structure is the official writers' (tflite-support's `image_classifier` and `nl_classifier`
metadata writers give byte-identical flatbuffers for the same strings). The classes come from
metadata_schema_generated.py: flatc's Python bindings of the vendored metadata_schema.fbs
(schema 1.5.0), committed and checked against flatc by tests/components/test_standard_metadata.py.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Union

from edgepipe.components.quantize import metadata_flatbuffer as storage
from edgepipe.components.quantize import metadata_schema_generated as fb

SCHEMA_VERSION = "1.5.0"  # of the vendored metadata_schema.fbs

# MediaPipe's (and the Task Library's) RegexTokenizer SPLITS the text on this RE2 pattern; the
# pieces are the tokens. It yields exactly the tokens of edgepipe.contracts.text_tokens
# (findall of \w+(?:'\w+)* on lowercased text): a delimiter is any run of characters outside
# [letters, digits, _, '], or an apostrophe that is not between two word characters. RE2 has no
# look-around, hence the alternatives: apostrophes after a delimiter, before one, doubled, at
# the start of what is left (RE2's ^ after a match) or at the end of the text. \pL\pN_ rather
# than \w: RE2's \w is ASCII-only, Python's is Unicode. The tokenizer does not lowercase: the
# caller must (docs/use-in-an-app.md).
DELIM_REGEX = r"[^\pL\pN_']+'*|'+[^\pL\pN_']+|''+|^'+|'+$"

# MediaPipe's RegexTokenizer looks these names up in the vocabulary file; <PAD> and <UNKNOWN>
# are required, and a <START> token would be put before every text.
PROJECT_TO_MEDIAPIPE_RESERVED = {"[PAD]": "<PAD>", "[UNK]": "<UNKNOWN>"}

# TFLite TensorType codes (schema.fbs) the metadata cares about.
FLOAT32, INT32, UINT8, INT8 = 0, 2, 3, 9


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""


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
class ClassificationOutput:
    labels: Sequence[str]
    labels_file: str = "labels.txt"
    name: str = "probabilities"
    description: str = "Probabilities of the labels respectively."


Input = Union[ImageInput, FeatureInput, TextInput]


def mediapipe_vocabulary(vocabulary: Sequence[str]) -> bytes:
    """The vocabulary file of a RegexTokenizer: "token id" per line, reserved names renamed
    ([PAD] -> <PAD>, [UNK] -> <UNKNOWN>; the ids stay 0 and 1).

    MediaPipe and the Task Library split each line on a space and read the id after it: a
    plain one-token-per-line file does not load (MediaPipe crashes on it).
    """
    lines = []
    for index, token in enumerate(vocabulary):
        token = PROJECT_TO_MEDIAPIPE_RESERVED.get(token, token)
        if not token or any(char.isspace() for char in token):
            raise ValueError(f"vocabulary id {index}: token {token!r} is empty or holds "
                             "whitespace, which the vocabulary file format cannot hold.")
        lines.append(f"{token} {index}\n")
    names = {line.split(" ")[0] for line in lines}
    missing = {"<PAD>", "<UNKNOWN>"} - names
    if missing:
        raise ValueError(f"the vocabulary has no {sorted(missing)}: MediaPipe's RegexTokenizer "
                         "needs them (the project's [PAD] and [UNK] become them).")
    if "<START>" in names:
        raise ValueError("a <START> token would be put before every text by MediaPipe.")
    return "".join(lines).encode("utf-8")


def populate(model_content: bytes, info: ModelInfo, inputs: Sequence[Input],
             outputs: Sequence[ClassificationOutput]) -> bytes:
    """`model_content` with the standard metadata and its associated files."""
    model = storage.read_model(model_content)
    graph = model.subgraphs[0]
    input_tensors = [graph.tensors[index] for index in graph.inputs]
    output_tensors = [graph.tensors[index] for index in graph.outputs]
    if len(inputs) != len(input_tensors) or len(outputs) != len(output_tensors):
        raise ValueError(f"the model has {len(input_tensors)} inputs and {len(output_tensors)} "
                         f"outputs; metadata was given for {len(inputs)} and {len(outputs)}.")
    files: dict[str, bytes] = {}
    metadata = fb.ModelMetadataT()
    metadata.name = info.name
    metadata.description = info.description or None
    metadata.version = info.version or None
    metadata.author = info.author or None
    metadata.license = info.license or None
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [
        _input_metadata(spec, tensor, files) for spec, tensor in zip(inputs, input_tensors)]
    subgraph.outputTensorMetadata = [
        _output_metadata(spec, tensor, files) for spec, tensor in zip(outputs, output_tensors)]
    metadata.subgraphMetadata = [subgraph]
    return storage.pack(model, metadata, files)


def read(model_content: bytes):
    """(ModelMetadataT or None, {packed file name: bytes}): the reverse of `populate`."""
    return storage.read(model_content)


def _input_metadata(spec: Input, tensor, files: dict[str, bytes]):
    if isinstance(spec, ImageInput):
        return _image_metadata(spec, tensor)
    if isinstance(spec, TextInput):
        return _text_metadata(spec, files)
    if isinstance(spec, FeatureInput):
        stats = None if spec.value_range is None else _stats([spec.value_range[0]],
                                                              [spec.value_range[1]])
        return _tensor_metadata(spec.name, spec.description, fb.FeaturePropertiesT(), stats)
    raise TypeError(f"unknown input spec {spec!r}")


def _image_metadata(spec: ImageInput, tensor):
    if len(spec.mean) != len(spec.std) or not spec.mean:
        raise ValueError(f"mean {list(spec.mean)} and std {list(spec.std)}: give one value, "
                         "or one per channel, for both.")
    if any(value == 0 for value in spec.std):
        raise ValueError("std 0 would divide by zero.")
    properties = fb.ImagePropertiesT()
    properties.colorSpace = getattr(fb.ColorSpaceType, spec.color_space)
    # What the tensor holds for pixels 0..255, as the official writer records it.
    if tensor.type in (UINT8, INT8):
        low, high = _quantized_range(tensor, 0.0, 255.0)
        stats = _stats([low], [high])
    else:
        stats = _stats([(0.0 - m) / s for m, s in zip(spec.mean, spec.std)],
                       [(255.0 - m) / s for m, s in zip(spec.mean, spec.std)])
    normalization = fb.ProcessUnitT()
    normalization.optionsType = fb.ProcessUnitOptions.NormalizationOptions
    normalization.options = fb.NormalizationOptionsT()
    normalization.options.mean = [float(value) for value in spec.mean]
    normalization.options.std = [float(value) for value in spec.std]
    metadata = _tensor_metadata(spec.name, spec.description, properties, stats)
    metadata.processUnits = [normalization]
    return metadata


def _quantized_range(tensor, low: float, high: float) -> tuple[float, float]:
    """The integer values a quantized tensor holds for real values low..high."""
    quantization = tensor.quantization
    if quantization is None or quantization.scale is None or not len(quantization.scale):
        return low, high
    scale = float(quantization.scale[0])
    zero_point = float(quantization.zeroPoint[0]) if quantization.zeroPoint is not None else 0.0
    bounds = (0.0, 255.0) if tensor.type == UINT8 else (-128.0, 127.0)
    return tuple(float(min(max(round(value / scale + zero_point), bounds[0]), bounds[1]))
                 for value in (low, high))


def _text_metadata(spec: TextInput, files: dict[str, bytes]):
    files[spec.vocabulary_file] = mediapipe_vocabulary(spec.vocabulary)
    vocabulary = _associated_file(
        spec.vocabulary_file, fb.AssociatedFileType.VOCABULARY,
        "Vocabulary of the RegexTokenizer: 'token id' per line; <PAD> pads, <UNKNOWN> is "
        "any other token.")
    tokenizer = fb.ProcessUnitT()
    tokenizer.optionsType = fb.ProcessUnitOptions.RegexTokenizerOptions
    tokenizer.options = fb.RegexTokenizerOptionsT()
    tokenizer.options.delimRegexPattern = spec.delim_regex_pattern
    tokenizer.options.vocabFile = [vocabulary]
    stats = _stats([0.0], [float(len(spec.vocabulary) - 1)])
    metadata = _tensor_metadata(spec.name, spec.description, fb.FeaturePropertiesT(), stats)
    metadata.processUnits = [tokenizer]
    return metadata


def _output_metadata(spec: ClassificationOutput, tensor, files: dict[str, bytes]):
    if not isinstance(spec, ClassificationOutput):
        raise TypeError(f"unknown output spec {spec!r}")
    size = int(tensor.shape[-1])
    if len(spec.labels) != size:
        raise ValueError(f"{len(spec.labels)} labels for an output of {size} classes.")
    files[spec.labels_file] = "\n".join(spec.labels).encode("utf-8")
    if tensor.type in (UINT8, INT8):
        stats = _stats(*map(lambda value: [value], _quantized_range(tensor, 0.0, 1.0)))
    else:
        stats = _stats([0.0], [1.0])
    metadata = _tensor_metadata(spec.name, spec.description, fb.FeaturePropertiesT(), stats)
    metadata.associatedFiles = [_associated_file(
        spec.labels_file, fb.AssociatedFileType.TENSOR_AXIS_LABELS,
        "Labels for categories that the model can recognize.")]
    return metadata


def _tensor_metadata(name: str, description: str, properties, stats):
    metadata = fb.TensorMetadataT()
    metadata.name = name
    metadata.description = description or None
    metadata.content = fb.ContentT()
    metadata.content.contentProperties = properties
    metadata.content.contentPropertiesType = {
        fb.FeaturePropertiesT: fb.ContentProperties.FeatureProperties,
        fb.ImagePropertiesT: fb.ContentProperties.ImageProperties,
    }[type(properties)]
    metadata.stats = stats if stats is not None else fb.StatsT()
    return metadata


def _stats(minimum: Sequence[float], maximum: Sequence[float]):
    stats = fb.StatsT()
    stats.min = [float(value) for value in minimum]
    stats.max = [float(value) for value in maximum]
    return stats


def _associated_file(name: str, file_type: int, description: str):
    associated = fb.AssociatedFileT()
    associated.name = name
    associated.description = description
    associated.type = file_type
    return associated
