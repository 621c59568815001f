"""The standard TFLite metadata of a variant (edgepipe.components.tflite_metadata, which
MediaPipe Tasks and the Task Library read), from its description (components/quantize/
metadata.py) and model.json: the input's kind (image, sequence or forecast window, text) and the
output's, per task (OUTPUTS, keyed by edgepipe.contracts.tasks). metadata.py's docstring says
what each kind states and why."""

from __future__ import annotations

from typing import Any

from edgepipe.components import tflite_metadata as tm
from edgepipe.contracts import tasks
from edgepipe.contracts.centroids import THRESHOLD


def standard(description: dict[str, Any], model_json: dict[str, Any], config,
             model_key: str) -> tm.ModelDescription:
    """The standard metadata of the variant `description` describes. Name, description,
    version, author and license: [quantize] metadata_* keys, or defaults derived from the
    model (its builder, classes and artifact key)."""
    variant = description["variant"]
    kind, about, output = OUTPUTS[tasks.of_model(model_json).name](model_json, description)
    return tm.ModelDescription(
        name=config.metadata_name or kind,
        inputs=[input_spec(model_json, description)],
        outputs=output if isinstance(output, list) else [output],
        description=config.metadata_description or (
            f"{about}, TFLite variant {variant}, built by edgepipe."),
        version=config.metadata_version or f"model {model_key[:12]}",
        author=config.metadata_author,
        license=config.metadata_license,
    )


def _class_scores(model_json: dict[str, Any], description: dict[str, Any]):
    """(model kind, what it does, the output's metadata) of a classifier."""
    classes = list(model_json["class_names"])
    kind = f"{model_json.get('model', 'keras')} {model_json['input_feature']} classifier"
    about = (f"{kind} of {len(classes)} classes ({', '.join(classes[:6])}"
             f"{', ...' if len(classes) > 6 else ''})")
    return kind, about, tm.ClassScores(
        classes, description=f"Probabilities of the {len(classes)} classes, in the order of "
                             f"labels.txt ({_quantization(description['output'])}).")


def _values(model_json: dict[str, Any], description: dict[str, Any]):
    """(model kind, what it does, the output's metadata) of a regression model: one value
    per target, in the data's own units (the model undoes the targets' normalisation)."""
    names = list(model_json["target_names"])
    kind = f"{model_json.get('model', 'keras')} {model_json['input_feature']} regressor"
    return kind, f"{kind} of {', '.join(names)}", tm.Values(
        names, description=f"Predicted {', '.join(names)}, one value each in the units of the "
                           f"training data ({_quantization(description['output'])}).")


def _detections(model_json: dict[str, Any], description: dict[str, Any]):
    """(model kind, what it does, the metadata of the four postprocess outputs in the model's
    output order) of a box detector: what MediaPipe's ObjectDetector reads."""
    classes = list(model_json["class_names"])
    kind = f"{model_json.get('model', 'keras')} object detector"
    about = (f"{kind} of {len(classes)} classes ({', '.join(classes[:6])}"
             f"{', ...' if len(classes) > 6 else ''})")
    what = {"locations": "Boxes (ymin, xmin, ymax, xmax) as fractions of the input image.",
            "classes": "Class index of each box, into labels.txt.",
            "scores": "Score of each box (softmax over background and the classes).",
            "count": "Number of valid detections."}
    return kind, about, [tm.DetectionOutput(role, labels=classes, description=what[role])
                         for role in description["output_roles"]]


def _heatmap(model_json: dict[str, Any], description: dict[str, Any]):
    """(model kind, what it does, the output's metadata) of a centroid detector: a heat map
    of background + class probabilities per grid cell, labelled along its last axis
    (MediaPipe has no centroid task: this is the plain standard description)."""
    classes = list(model_json["class_names"])
    rows, columns = model_json["grid"]
    kind = f"{model_json.get('model', 'keras')} centroid detector"
    about = (f"{kind} of {len(classes)} classes ({', '.join(classes[:6])}"
             f"{', ...' if len(classes) > 6 else ''}) on a {rows}x{columns} grid")
    return kind, about, tm.ClassScores(
        ["background", *classes], name="heatmap",
        description=f"Heat map [1, {rows}, {columns}, {1 + len(classes)}]: per grid cell the "
                    "probabilities of background and of each class, in the order of "
                    "labels.txt (softmax). An object's centroid: neighbouring cells whose most "
                    f"probable label is the same class with probability >= {THRESHOLD:g}, merged "
                    f"({_quantization(description['output'])}).")


def _forecasts(model_json: dict[str, Any], description: dict[str, Any]):
    """(model kind, what it does, the output's metadata) of a forecasting model: the next
    horizon values (x quantiles), in the series' own units."""
    forecast = model_json["forecast"]
    names = list(model_json["target_names"])
    kind = f"{model_json.get('model', 'keras')} forecaster"
    quantiles = forecast.get("quantiles") or []
    what = (f"quantiles {', '.join(f'{q:g}' for q in quantiles)} of each of the next "
            f"{forecast['horizon']} steps, step-major" if quantiles
            else f"the next {forecast['horizon']} values")
    return kind, (f"{kind} of {forecast.get('target', 'a series')}: {what} from the last "
                  f"{forecast['lookback']} steps"), tm.Values(
        names, description=f"Forecasts: {what} ({', '.join(names[:4])}"
                           f"{', ...' if len(names) > 4 else ''}), in the units of the input "
                           f"series: the model scales each window inside and multiplies back "
                           f"({_quantization(description['output'])}).")


# The output's standard metadata per task (edgepipe.contracts.tasks).
OUTPUTS = {"classification": _class_scores, "regression": _values, "detection": _detections,
           "centroids": _heatmap, "forecasting": _forecasts}


def input_spec(model_json: dict[str, Any], description: dict[str, Any]) -> tm.Input:
    feature = model_json.get("input_feature", "image")
    tensor = description["input"]
    if feature == "text":
        return _text(model_json, description)
    if feature == "audio":  # MediaPipe's AudioClassifier reads the rate and channels here
        rate, samples = int(model_json["sample_rate"]), tensor["shape"][-1]
        return tm.AudioInput(
            sample_rate=rate, channels=1,
            description=f"{samples} mono samples ({samples / rate:g} s at {rate} Hz) as float "
                        "values in [-1, 1] (16-bit PCM / 32768); the model computes its "
                        f"log-mel spectrogram inside ({_quantization(tensor)}).")
    if feature == "image" and tensor["shape"][-1] in (1, 3):
        rgb = tensor["shape"][-1] == 3
        height, width = tensor["shape"][1:3]
        converted = (" The model converts RGB to one gray channel inside (it was trained on "
                     "grayscale images)." if model_json.get("rgb_to_gray") else "")
        return tm.ImageInput(
            mean=[0.0], std=[1.0], color_space="RGB" if rgb else "GRAYSCALE",
            description=f"{height}x{width} {'RGB' if rgb else 'grayscale'} image, raw pixels "
                        f"0..255 ({_quantization(tensor)}); mean 0 and std 1: the model "
                        f"normalises inside, so feed the pixels as they are.{converted}")
    low, high = tensor["raw_range"]
    shape = " x ".join(str(size) for size in tensor["shape"][1:])
    if feature == "sequence" and model_json.get("forecast"):
        what = _window(model_json)
    elif feature == "sequence":
        steps, channels = tensor["shape"][1:]
        what = (f"Sequence of {steps} steps x {channels} channels, raw values (the model "
                f"normalises inside), {tensor.get('padding', 'pre')}-padded with "
                f"{tensor.get('padding_value', 0.0)} to {steps} steps")
    else:
        what = f"Input of shape {shape}, raw values (the model normalises inside)"
    return tm.FeatureInput(
        value_range=(float(low), float(high)), name=feature,
        description=f"{what}; calibrated on values {low:g}..{high:g} ({_quantization(tensor)}).")


def _window(model_json: dict[str, Any]) -> str:
    """What a forecasting model's input window holds (edgepipe.contracts.forecast_windows)."""
    forecast = model_json["forecast"]
    steps, channels = model_json["input_shape"]
    columns = [forecast.get("target") or "value", *forecast.get("covariates", []), "mask"]
    return (f"Window of the last {steps} steps of a series, oldest first, x {channels} "
            f"channels ({', '.join(columns)}): raw values in the series' own units (the model "
            "scales the window by the mean absolute value of its real steps inside); a series "
            f"shorter than {steps} steps is padded before its first value with zeros and mask "
            "0, real steps have mask 1")


def _text(model_json: dict[str, Any], description: dict[str, Any]) -> tm.TextInput:
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
    return tm.TextInput(
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
