"""The output end of a model, per task (edgepipe.contracts.tasks): the head every builder's
model gets, and the loss and metrics it is compiled with.

Builders (built-in or the user's) return a classifier: their last layer maps features to
class probabilities. A classification model keeps it. A regression model replaces that last
layer by a linear layer of one unit per target, followed by the inverse of the targets'
normalisation (mean and variance of the train split, from the statistics): the model learns
normalised targets but returns values in the data's own units, so the SavedModel and every
.tflite answer in those units and no client has to undo a scaling. The loss is computed on
normalised targets (Huber's delta is then one train standard deviation, whatever the units).
"""

from __future__ import annotations

from typing import Any

from edgepipe.components.shared import forecast_head


def classification_head(keras, model, spec: dict[str, Any]):
    return model


def regression_head(keras, model, spec: dict[str, Any]):
    """The builder's model with its output layer replaced by the regression head."""
    normalization = spec["target_normalization"]
    count = len(normalization["mean"])
    features = model.layers[-1].input
    if isinstance(features, (list, tuple)) or not hasattr(model.layers[-1], "units"):
        raise ValueError(
            f"model {model.name!r}: its last layer {model.layers[-1].name!r} is not a Dense "
            "layer of one input; for regression edgepipe replaces the builder's output layer "
            "by a linear one per target. End the model with a Dense output layer.")
    normalized = keras.layers.Dense(count, dtype="float32", name="values_normalized")(features)
    values = keras.layers.Normalization(
        axis=-1, mean=normalization["mean"], variance=normalization["variance"], invert=True,
        dtype="float32", name="values")(normalized)
    return keras.Model(model.inputs, values, name=model.name)


def crossentropy(keras, config, spec: dict[str, Any]):
    """(loss, metrics) of a classifier: sparse cross-entropy, label-smoothed on demand."""
    from edgepipe.components.shared.model_builder import smoothed_sparse_crossentropy

    smoothing = float(getattr(config, "label_smoothing", 0.0) or 0.0)
    loss = (smoothed_sparse_crossentropy(keras, smoothing) if smoothing
            else "sparse_categorical_crossentropy")
    return loss, ["accuracy"]


def normalized_regression_loss(keras, config, spec: dict[str, Any]):
    """(loss, metrics) of a regression model: MSE or Huber (`[train] loss`) on targets
    normalised by the train split's statistics; the metric is the MAE in the data's units."""
    import tensorflow as tf

    normalization = spec["target_normalization"]
    mean = tf.constant(normalization["mean"], tf.float32)
    std = tf.constant([value ** 0.5 or 1.0 for value in normalization["variance"]], tf.float32)
    kind = getattr(config, "loss", None) or "mse"
    base = (keras.losses.Huber(delta=1.0) if kind == "huber"
            else keras.losses.MeanSquaredError())

    def loss(targets, values):
        targets = tf.cast(tf.reshape(targets, tf.shape(values)), tf.float32)
        return base((targets - mean) / std, (values - mean) / std)

    loss.__name__ = f"normalized_{kind}"
    return loss, [keras.metrics.MeanAbsoluteError(name="mae")]


def detection_head(keras, model, spec: dict[str, Any]):
    """A detector's builder (edgepipe.models.ssd) returns its raw outputs [batch, anchors,
    4 + 1 + classes] itself; anything else is refused here, before training."""
    classes = len(spec["class_names"])
    return require_output(model, 3, 5 + classes,
                          f"task detection needs the raw detections [batch, anchors, 4 + 1 + "
                          f"{classes}] of a detector: set [train] model = \"ssd\" (with your "
                          "own backbone in [train.model_options] backbone), or \"fomo\" for "
                          "centroids")


def require_output(model, rank: int, depth: int, needed: str):
    """The model, if its one output has `rank` dimensions and `depth` values along the last;
    else ValueError naming the model, its output and `needed` (what it should be)."""
    shape = tuple(model.output_shape) if not isinstance(model.output_shape, list) else ()
    if len(shape) != rank or shape[-1] != depth:
        raise ValueError(f"model {model.name!r} returns {model.output_shape}; {needed}.")
    return model


def detection_loss(keras, config, spec: dict[str, Any]):
    from edgepipe.components.shared import detection

    return detection.loss(keras, config, spec)


def centroid_head(keras, model, spec: dict[str, Any]):
    from edgepipe.components.shared import centroids

    return centroids.head(keras, model, spec)


def centroid_loss(keras, config, spec: dict[str, Any]):
    from edgepipe.components.shared import centroids

    return centroids.loss(keras, config, spec)


def next_character_loss(keras, config, spec: dict[str, Any]):
    """(loss, metrics) of a generator: cross-entropy of every next character from the
    logits, and the same in bits per character (the loss / ln 2)."""
    import math

    def bits_per_char(targets, logits):
        return keras.losses.sparse_categorical_crossentropy(
            targets, logits, from_logits=True) / math.log(2.0)

    return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            [keras.metrics.MeanMetricWrapper(bits_per_char, name="bits_per_char")])


HEADS = {"classification": classification_head, "regression": regression_head,
         "detection": detection_head, "centroids": centroid_head,
         "forecasting": forecast_head.head,
         "generation": classification_head}  # a generator's builder returns the logits
LOSSES = {"classification": crossentropy, "regression": normalized_regression_loss,
          "detection": detection_loss, "centroids": centroid_loss,
          "forecasting": forecast_head.loss,
          "generation": next_character_loss}
# The validation metric a search or a schedule follows, and whether higher is better.
VALIDATION_METRIC = {"classification": ("val_accuracy", True), "regression": ("val_mae", False),
                     "detection": ("val_loss", False), "centroids": ("val_loss", False),
                     "forecasting": ("val_loss", False),
                     "generation": ("val_bits_per_char", False)}
# Tasks whose model takes something other than what input_spec derives from the examples:
# spec(examples, statistics_dir) gives the model.json fields that replace input_spec's.
SPECS = {"forecasting": forecast_head.spec}


def detector_spec(model, config) -> dict[str, Any]:
    """model.json's "detector": the feature-map grids the heads sit on and the anchor shapes
    (models/ssd.anchors rebuilds the anchors from them), read from the built model and the
    builder's options."""
    from edgepipe import models
    from edgepipe.models import ssd

    options = {**models.option_defaults(config.model), **config.model_options}
    return {"detector": {"grids": [list(grid) for grid in ssd.grids(model)],
                         "scales": [list(level) for level in options["scales"]],
                         "aspect_ratios": list(options["aspect_ratios"])}}


# What a task adds to model.json once the model is built (the train stage asks before it
# builds the input pipeline, which may need it).
def centroid_spec(model, config) -> dict[str, Any]:
    from edgepipe.components.shared import centroids

    return centroids.spec(model, config)


MODEL_SPEC = {"detection": detector_spec, "centroids": centroid_spec}


def detection_outputs(tf, output: str, raw, spec: dict[str, Any]) -> dict:
    """A detector's decoded boxes after non-max suppression (what the TFLite postprocess op
    returns): "<output>_boxes", "_classes", "_scores", "_count"."""
    from edgepipe.components.shared import detection

    found = detection.postprocess(tf, raw, detection.anchors_of(spec))
    return {f"{output}_{key}": value for key, value in found.items()}


# The serving signature's outputs where they are not {task.output: the model's output}.
SERVING_OUTPUTS = {"detection": detection_outputs}


def serving_outputs(tf, task_name: str, output: str, raw, spec: dict[str, Any]) -> dict:
    if task_name in SERVING_OUTPUTS:
        return SERVING_OUTPUTS[task_name](tf, output, raw, spec)
    return {output: raw}


def target_normalization(statistics: dict, names: list[str], path) -> dict[str, list[float]]:
    """{"mean", "variance"} per target from the train split's statistics (a constant target
    gets variance 1: its values are then only shifted)."""
    try:
        columns = statistics["splits"]["train"]["features"]["target"]["columns"]
        means = [float(columns[name]["mean"]) for name in names]
        stds = [float(columns[name]["std"]) for name in names]
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: no target statistics for {names} ({error!r}); re-run the "
                         "statistics stage on these examples.") from error
    return {"mean": means, "variance": [std ** 2 if std > 0 else 1.0 for std in stds]}
