"""Writing a `ModelDescription` as the standard TFLite metadata (`TFLITE_METADATA`).

What MediaPipe Tasks, the TFLite Task Library, Android Studio's model import and Netron read:
the model's name, description, version, author and license; one `TensorMetadata` per input
(an image: its colour space, normalisation options and value range; audio: its sample rate
and channels; a sequence or any other feature: its value range; text: a RegexTokenizer
process unit with the vocabulary as an associated file) and per output (class scores: the
class names as a TENSOR_AXIS_LABELS file; values: their names, units and range); the
associated files packed into the .tflite as an uncompressed zip (flatbuffer.py stores it all).

The structure is the official writers' (tflite-support's `image_classifier` and `nl_classifier`
metadata writers give byte-identical flatbuffers for the same strings). The classes come from
metadata_schema_generated.py: flatc's Python bindings of the vendored metadata_schema.fbs
(schema 1.5.0), committed and checked against flatc by tests/components/test_standard_metadata.py.
"""

from __future__ import annotations

from typing import Sequence

from edgepipe.components.tflite_metadata import flatbuffer as storage
from edgepipe.components.tflite_metadata import metadata_schema_generated as fb
from edgepipe.components.tflite_metadata.description import (
    AudioInput, ClassScores, DetectionOutput, FeatureInput, ImageInput, ModelDescription,
    TextInput, Values)

SCHEMA_VERSION = "1.5.0"  # of the vendored metadata_schema.fbs

# MediaPipe's RegexTokenizer looks these names up in the vocabulary file; <PAD> and <UNKNOWN>
# are required, and a <START> token would be put before every text.
PROJECT_TO_MEDIAPIPE_RESERVED = {"[PAD]": "<PAD>", "[UNK]": "<UNKNOWN>"}

# TFLite TensorType codes (schema.fbs) the metadata cares about.
UINT8, INT8 = 3, 9


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


def write(model_content: bytes, model: ModelDescription) -> bytes:
    """`model_content` with the standard metadata of `model` and its associated files (an
    older TFLITE_METADATA and its files are replaced; other metadata entries are kept)."""
    flat = storage.read_model(model_content)
    graph = flat.subgraphs[0]
    input_tensors = [graph.tensors[index] for index in graph.inputs]
    output_tensors = [graph.tensors[index] for index in graph.outputs]
    if len(model.inputs) != len(input_tensors) or len(model.outputs) != len(output_tensors):
        raise ValueError(f"the model has {len(input_tensors)} inputs and {len(output_tensors)} "
                         f"outputs; the description gives {len(model.inputs)} and "
                         f"{len(model.outputs)}: describe each tensor once, in order.")
    files: dict[str, bytes] = {}
    metadata = fb.ModelMetadataT()
    metadata.name = model.name
    metadata.description = model.description or None
    metadata.version = model.version or None
    metadata.author = model.author or None
    metadata.license = model.license or None
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [_build(spec, tensor, files)
                                    for spec, tensor in zip(model.inputs, input_tensors)]
    subgraph.outputTensorMetadata = [_build(spec, tensor, files)
                                     for spec, tensor in zip(model.outputs, output_tensors)]
    metadata.subgraphMetadata = [subgraph]
    return storage.pack(flat, metadata, files)


def _build(spec, tensor, files: dict[str, bytes]):
    """The TensorMetadataT of one described tensor (its associated files go into `files`)."""
    builders = {ImageInput: _image_metadata, AudioInput: _audio_metadata,
                FeatureInput: _feature_metadata, TextInput: _text_metadata,
                ClassScores: _class_scores_metadata, Values: _values_metadata,
                DetectionOutput: _detection_metadata}
    if type(spec) not in builders:
        raise TypeError(f"no metadata builder for {spec!r}; describe tensors with the classes "
                        "of edgepipe.components.tflite_metadata.description.")
    return builders[type(spec)](spec, tensor, files)


def _feature_metadata(spec: FeatureInput, tensor, files: dict[str, bytes]):
    stats = None if spec.value_range is None else _stats([spec.value_range[0]],
                                                          [spec.value_range[1]])
    return _tensor_metadata(spec.name, spec.description, fb.FeaturePropertiesT(), stats)


def _audio_metadata(spec: AudioInput, tensor, files: dict[str, bytes]):
    if spec.sample_rate <= 0 or spec.channels <= 0:
        raise ValueError(f"audio input {spec.name!r}: sample_rate {spec.sample_rate} and "
                         f"channels {spec.channels} must both be positive.")
    properties = fb.AudioPropertiesT(sampleRate=int(spec.sample_rate), channels=int(spec.channels))
    return _tensor_metadata(spec.name, spec.description, properties, None)


def _image_metadata(spec: ImageInput, tensor, files: dict[str, bytes]):
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


def _text_metadata(spec: TextInput, tensor, files: dict[str, bytes]):
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


def _class_scores_metadata(spec: ClassScores, tensor, files: dict[str, bytes]):
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


def _values_metadata(spec: Values, tensor, files: dict[str, bytes]):
    size = int(tensor.shape[-1])
    if len(spec.names) != size:
        raise ValueError(f"{len(spec.names)} value names for an output of {size} values.")
    if spec.units and len(spec.units) != size:
        raise ValueError(f"{len(spec.units)} units for an output of {size} values; give one "
                         "per value (an empty string for none), or none at all.")
    named = ", ".join(f"{name} ({unit})" if unit else name
                      for name, unit in zip(spec.names, spec.units or [""] * size))
    description = spec.description or f"Predicted values, in order: {named}."
    stats = None
    if spec.value_range is not None:
        low, high = (float(value) for value in spec.value_range)
        if tensor.type in (UINT8, INT8):
            low, high = _quantized_range(tensor, low, high)
        stats = _stats([low], [high])
    return _tensor_metadata(spec.name, description, fb.FeaturePropertiesT(), stats)


def _detection_metadata(spec: DetectionOutput, tensor, files: dict[str, bytes]):
    """The Task Library's and MediaPipe's object-detector layout: boxes as BOUNDARIES in
    RATIO coordinates with index [1, 0, 3, 2] (the op writes ymin, xmin, ymax, xmax; the
    index says where left, top, right, bottom are), the detections along dimension 2 of the
    locations, classes and scores (`range`), the labels on the classes (values index them)."""
    if spec.role == "locations":
        properties = fb.BoundingBoxPropertiesT(index=[1, 0, 3, 2],
                                               type=fb.BoundingBoxType.BOUNDARIES,
                                               coordinateType=fb.CoordinateType.RATIO)
    else:
        properties = fb.FeaturePropertiesT()
    metadata = _tensor_metadata(spec.name, spec.description, properties, None)
    if spec.role != "count":
        metadata.content.range = fb.ValueRangeT(min=2, max=2)
    if spec.role == "classes":
        files[spec.labels_file] = "\n".join(spec.labels).encode("utf-8")
        metadata.associatedFiles = [_associated_file(
            spec.labels_file, fb.AssociatedFileType.TENSOR_VALUE_LABELS,
            "Labels of the class indices the model outputs.")]
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
        fb.AudioPropertiesT: fb.ContentProperties.AudioProperties,
        fb.BoundingBoxPropertiesT: fb.ContentProperties.BoundingBoxProperties,
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
