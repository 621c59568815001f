"""What would stop MediaPipe Tasks (ImageClassifier / TextClassifier, mediapipe 1.2.x) from
using a .tflite with standard metadata, found without MediaPipe installed.

Each rule was observed by running MediaPipe 1.2.2's classifiers on models that break it
(benchmarks/mediapipe_check.py runs the classifiers themselves); each message names the fix.
Not checked here, because they are properties of the training config and of the caller, not
of the file: MediaPipe pads text after the tokens (train with [train] padding = "post"), never
lowercases (the app must), and cuts a text at a NUL character.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np

from edgepipe.components import tflite_metadata
from edgepipe.components.tflite_metadata import schema as fb

_FLOAT32, _INT32, _UINT8 = 0, 2, 3  # TFLite TensorType codes (schema.fbs)


def problems(model_content: bytes) -> list[str]:
    """Human-readable reasons MediaPipe's classifiers would reject or misread the model."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(model_content, 0))
    graph = model.subgraphs[0]
    metadata, files = tflite_metadata.read(model_content)
    found = []
    if metadata is None:
        return ["no TFLITE_METADATA: MediaPipe needs labels (and a tokenizer for text)."]
    version = _text(metadata.minParserVersion) or "1.0.0"
    if tuple(int(part) for part in version.split(".")) > (1, 5, 0):
        found.append(f"min_parser_version {version} is newer than MediaPipe's parser (1.5.0).")
    if files and _compressed(model_content):
        found.append("associated files must be stored uncompressed in the appended zip.")
    tensors = metadata.subgraphMetadata[0]
    inputs = [graph.tensors[i] for i in graph.inputs]
    outputs = [graph.tensors[i] for i in graph.outputs]
    for tensor in outputs:
        if tensor.type not in (_FLOAT32, _UINT8):
            found.append("outputs must be float32 or uint8 (int8 is rejected): use the uint8 "
                         "variant or a float one.")
    for tensor, tensor_md in zip(inputs, tensors.inputTensorMetadata or []):
        units = tensor_md.processUnits or []
        kinds = {unit.optionsType for unit in units}
        if fb.ProcessUnitOptions.RegexTokenizerOptions in kinds:
            found += _text_problems(tensor, units, files, graph)
        elif tensor_md.content and tensor_md.content.contentPropertiesType == \
                fb.ContentProperties.ImageProperties:
            found += _image_problems(tensor, tensor_md, units)
    return found


def _compressed(model_content: bytes) -> bool:
    with zipfile.ZipFile(io.BytesIO(model_content)) as archive:
        return any(entry.compress_type != zipfile.ZIP_STORED for entry in archive.infolist())


def _image_problems(tensor, tensor_md, units) -> list[str]:
    found = []
    shape = [int(size) for size in tensor.shape]
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (3, 4):
        found.append(f"image input shape {shape}: MediaPipe needs [1, H, W, 3 or 4] (RGB); "
                     "put a channel-mean layer in front of a grayscale model.")
    if tensor_md.content.contentProperties.colorSpace != fb.ColorSpaceType.RGB:
        found.append("image colour space must be RGB ('Only RGB color space is supported').")
    if tensor.type not in (_FLOAT32, _UINT8):
        found.append("image input must be float32 or uint8 (int8 is rejected): convert with "
                     "the uint8 variant.")
    normalization = [u.options for u in units
                     if u.optionsType == fb.ProcessUnitOptions.NormalizationOptions]
    if tensor.type == _FLOAT32 and not normalization:
        found.append("a float32 image input needs NormalizationOptions.")
    for options in normalization:
        mean, std = list(options.mean), list(options.std)
        if len(set(mean)) > 1 or len(set(std)) > 1:
            found.append("per-channel normalization is not implemented in MediaPipe: use one "
                         "mean and one std for all channels.")
        if tensor.type == _UINT8 and tensor.quantization is not None:
            scale = float(np.ravel(tensor.quantization.scale)[0])
            zero_point = float(np.ravel(tensor.quantization.zeroPoint)[0])
            if not (np.isclose(scale * std[0], 1.0, rtol=1e-3) and
                    np.isclose(zero_point, mean[0], atol=0.5)):
                found.append(f"uint8 input quantization (scale {scale:g}, zero point "
                             f"{zero_point:g}) is not pixel = q: MediaPipe feeds raw pixels, "
                             f"so scale must be 1/std = {1 / std[0]:g} and zero point "
                             f"mean = {mean[0]:g} (calibrate on data spanning 0..255).")
    return found


def _text_problems(tensor, units, files, graph) -> list[str]:
    found = []
    shape = [int(size) for size in tensor.shape]
    if tensor.type != _INT32 or len(shape) != 2 or shape[0] != 1:
        found.append(f"text input must be int32 [1, T], not {shape}.")
    options = next(u.options for u in units
                   if u.optionsType == fb.ProcessUnitOptions.RegexTokenizerOptions)
    name = _text(options.vocabFile[0].name) if options.vocabFile else None
    lines = files.get(name, b"").decode("utf-8", "replace").splitlines()
    if not lines or any(len(line.split(" ")) < 2 for line in lines if line):
        found.append("the vocabulary file must hold 'token id' per line (a plain token list "
                     "crashes MediaPipe).")
    tokens = {line.split(" ")[0] for line in lines}
    for needed in ("<PAD>", "<UNKNOWN>"):
        if needed not in tokens:
            found.append(f"the vocabulary has no {needed} (MediaPipe refuses the model).")
    if "<START>" in tokens:
        found.append("the vocabulary has <START>: MediaPipe puts it before every text.")
    if any(t.isVariable for t in graph.tensors):
        found.append("the model keeps state in variable tensors (fused LSTM): MediaPipe never "
                     "resets them, so each classify() starts from the previous text's state; "
                     "train with [train.model_options] unroll = true, or create a classifier "
                     "per text.")
    return found


def _text(value) -> str | None:
    """A string field of the object API: bytes as read."""
    return value.decode("utf-8") if isinstance(value, bytes) else value
