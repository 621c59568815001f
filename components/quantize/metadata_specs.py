"""What the standard TFLite metadata of a variant says, from model.json and the variant's own
tensors (metadata.describe), and the call that writes it (standard_metadata.populate).

- image: colour space (RGB for 3 channels, GRAYSCALE for 1), normalisation mean 0 / std 1:
  the model normalises inside, so tools feed the raw pixels 0..255 (MediaPipe requires
  NormalizationOptions on a float image input, and mean 0 / std 1 makes it pass the pixels
  through); a quantized input states its scale and zero point.
- sequence: steps x channels, the padding rule and the raw value range the variant was
  calibrated on; no normalisation options (the model normalises inside).
- text: the RegexTokenizer (delimiter regex equivalent to edgepipe.contracts.text_tokens, the
  vocabulary as "token id" lines), with what the caller must do: lowercase the text, and for
  a fused LSTM reset its state between texts.
- output: the class names as labels.txt (TENSOR_AXIS_LABELS); no score calibration (the
  pipeline does not calibrate scores).
"""

from __future__ import annotations

from typing import Any

from edgepipe.components.quantize import standard_metadata as sm


def model_info(config, model_json: dict[str, Any], variant: str, model_key: str) -> sm.ModelInfo:
    """Name, description, version, author and license: [quantize] metadata_* keys, or
    defaults derived from the model (its builder, classes and artifact key)."""
    classes = list(model_json["class_names"])
    kind = f"{model_json.get('model', 'keras')} {model_json['input_feature']} classifier"
    description = config.metadata_description or (
        f"{kind} of {len(classes)} classes ({', '.join(classes[:6])}"
        f"{', ...' if len(classes) > 6 else ''}), TFLite variant {variant}, built by edgepipe.")
    return sm.ModelInfo(
        name=config.metadata_name or kind,
        description=description,
        version=config.metadata_version or f"model {model_key[:12]}",
        author=config.metadata_author,
        license=config.metadata_license,
    )


def write(content: bytes, info: sm.ModelInfo, model_json: dict[str, Any],
          description: dict[str, Any]) -> bytes:
    """`content` with its standard metadata and packed files."""
    output = description["output"]
    labels = sm.ClassificationOutput(
        list(model_json["class_names"]),
        description=f"Probabilities of the {len(model_json['class_names'])} classes, in the "
                    f"order of labels.txt ({_quantization(output)}).")
    return sm.populate(content, info, [input_spec(model_json, description)], [labels])


def input_spec(model_json: dict[str, Any], description: dict[str, Any]) -> sm.Input:
    feature = model_json.get("input_feature", "image")
    tensor = description["input"]
    if feature == "text":
        return _text(model_json, description)
    if feature == "image" and tensor["shape"][-1] in (1, 3):
        rgb = tensor["shape"][-1] == 3
        height, width = tensor["shape"][1:3]
        converted = (" The model converts RGB to one gray channel inside (it was trained on "
                     "grayscale images)." if model_json.get("rgb_to_gray") else "")
        return sm.ImageInput(
            mean=[0.0], std=[1.0], color_space="RGB" if rgb else "GRAYSCALE",
            description=f"{height}x{width} {'RGB' if rgb else 'grayscale'} image, raw pixels "
                        f"0..255 ({_quantization(tensor)}); mean 0 and std 1: the model "
                        f"normalises inside, so feed the pixels as they are.{converted}")
    low, high = tensor["raw_range"]
    shape = " x ".join(str(size) for size in tensor["shape"][1:])
    if feature == "sequence":
        steps, channels = tensor["shape"][1:]
        what = (f"Sequence of {steps} steps x {channels} channels, raw values (the model "
                f"normalises inside), {tensor.get('padding', 'pre')}-padded with "
                f"{tensor.get('padding_value', 0.0)} to {steps} steps")
    else:
        what = f"Input of shape {shape}, raw values (the model normalises inside)"
    return sm.FeatureInput(
        value_range=(float(low), float(high)), name=feature,
        description=f"{what}; calibrated on values {low:g}..{high:g} ({_quantization(tensor)}).")


def _text(model_json: dict[str, Any], description: dict[str, Any]) -> sm.TextInput:
    tensor = description["input"]
    length = tensor["shape"][-1]
    padding = tensor.get("padding", "pre")
    where = "after" if padding == "post" else "before"
    state = (" The fused LSTM keeps its state between invocations: reset it (LiteRT "
             "resetVariableTensors / reset_all_variables) or use a new classifier per text."
             if description.get("reset_variables_between_examples") else "")
    mismatch = ("" if padding == "post" else " MediaPipe and the Task Library pad after the "
                "tokens; this model was trained with padding before them, so their results "
                "can differ slightly (train with [train] padding = \"post\" for them).")
    return sm.TextInput(
        list(model_json["vocabulary"]),
        description=f"int32 token ids [1, {length}] of the LOWERCASED text (lowercase before "
                    "classifying: the RegexTokenizer does not); unknown tokens are <UNKNOWN> "
                    f"(id 1), padding is <PAD> (id 0) {where} the tokens, at most {length} "
                    f"tokens kept.{mismatch}{state}")


def _quantization(tensor: dict[str, Any]) -> str:
    if not tensor.get("scale"):
        return f"{tensor['dtype']}, not quantized"
    return (f"{tensor['dtype']}, quantized: real value = (q - {tensor['zero_point']}) * "
            f"{tensor['scale']:.9g}")
