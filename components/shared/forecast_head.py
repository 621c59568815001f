"""Task "forecasting": what the model takes (its spec), the head every builder's model gets,
and the loss.

The model takes a raw window [lookback, value + covariates + mask] (edgepipe.contracts.
forecast_windows) and returns the next `horizon` values (x quantiles) in the series' own
units. Scaling is per window, inside the model: the values are divided by the mean absolute
value of the window's real steps (the mask says which), the builder's network (mlp, lstm,
conv1d, or the user's: its output layer is replaced) reads the scaled window, a linear layer
gives one output per horizon step (and quantile), and those are multiplied back by the
scale. A device therefore feeds raw values and receives forecasts; one global model serves
series of any level. Covariates are normalised by the builder's own Normalization layer
(train statistics); the value and mask channels pass it unchanged (mean 0, variance 1).

The loss is computed per window relative to the level of its targets (MAE, MSE or, with
quantiles, the pinball loss, over the targets' mean absolute value), so large series do not
dominate training, as sMAPE and MASE do not let them dominate evaluation.
"""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.contracts import artifacts, forecast_windows


def spec(examples, statistics_dir) -> dict[str, Any]:
    """The model.json fields of a forecasting model (they replace input_spec's)."""
    settings = forecast_windows.read_settings(examples)
    path = pathlib.Path(statistics_dir) / artifacts.STATISTICS
    try:
        stats = artifacts.read_statistics(statistics_dir)["splits"]["train"]["features"][
            "sequence"]
        means, stds = [float(v) for v in stats["mean"]], [float(v) for v in stats["std"]]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: no train statistics of the windows ({error!r}); re-run the "
                         "statistics stage.") from error
    channels = 2 + len(settings["covariates"])
    covariate_means = means[1:channels - 1]
    covariate_variances = [std ** 2 if std > 0 else 1.0 for std in stds[1:channels - 1]]
    quantiles = tuple(settings.get("quantiles") or ())
    return {"task": "forecasting", "class_names": [],
            "target_names": forecast_windows.horizon_names(settings["horizon"], quantiles),
            "input_shape": [settings["lookback"], channels], "padding": "pre",
            "padding_value": 0.0,
            "normalization": {"mean": [0.0, *covariate_means, 0.0],
                              "variance": [1.0, *covariate_variances, 1.0]},
            "forecast": {**{key: settings[key] for key in (
                "horizon", "lookback", "seasonality", "quantiles", "covariates", "target")},
                # the evaluate's relative gate: what the model was trained without
                "backtest_windows": settings.get("backtest_windows", 1)}}


# Floor of the window scale: an all-zero window stays zero instead of dividing by zero.
MIN_SCALE = 1e-6


def head(keras, model, spec: dict[str, Any]):
    """The builder's model inside: raw window -> scaled window -> its features -> one
    linear output per horizon step (x quantile) -> multiplied back by the window's scale."""
    import tensorflow as tf

    forecast = spec["forecast"]
    count = forecast["horizon"] * max(1, len(forecast["quantiles"]))
    last = model.layers[-1]
    if isinstance(last.input, (list, tuple)) or not hasattr(last, "units"):
        raise ValueError(
            f"model {model.name!r}: its last layer {last.name!r} is not a Dense layer of one "
            "input; for forecasting edgepipe replaces the builder's output layer by one output "
            "per horizon step. End the model with a Dense output layer.")
    body = keras.Model(model.inputs, last.input, name=f"{model.name}_body")
    window = keras.Input(shape=tuple(spec["input_shape"]), dtype="float32", name="sequence")
    values, mask = window[:, :, 0], window[:, :, -1]
    real = tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)
    scale = tf.maximum(tf.reduce_sum(tf.abs(values) * mask, axis=1, keepdims=True) / real,
                       MIN_SCALE)
    scaled = tf.concat([tf.expand_dims(values / scale, -1), window[:, :, 1:]], axis=-1)
    outputs = keras.layers.Dense(count, dtype="float32", name="values_scaled")(body(scaled))
    return keras.Model(window, outputs * scale, name=model.name)


def scaling_layers(model) -> list[str]:
    """The layers of `head` around the builder's network and the output Dense (the window's
    scale, the scaled window, the forecasts multiplied back: TensorFlow ops in the model), or
    [] for a model without the head. Full int8 keeps them float (quantize/convert.py): one
    input scale for series of every level would leave small series a few steps; scaled, the
    network's int8 input has one range for all."""
    if "values_scaled" not in [layer.name for layer in model.layers]:
        return []
    return [layer.name for layer in model.layers
            if type(layer).__name__ in ("TFOpLambda", "SlicingOpLambda")]


def loss(keras, config, spec: dict[str, Any]):
    """(loss, metrics): MAE or MSE (`[train] loss`) relative to each window's target level,
    or the pinball loss over the quantiles; the metric is the point forecast's MAE in the
    data's units."""
    import tensorflow as tf

    forecast = spec["forecast"]
    horizon, quantiles = forecast["horizon"], list(forecast["quantiles"])
    kind = "pinball" if quantiles else (getattr(config, "loss", None) or "mae")

    def relative(targets, outputs):
        targets = tf.cast(tf.reshape(targets, [-1, horizon]), tf.float32)
        level = tf.reduce_mean(tf.abs(targets), axis=1, keepdims=True) + 1e-8
        if quantiles:
            predicted = tf.reshape(outputs, [-1, horizon, len(quantiles)])
            error = (targets[:, :, None] - predicted) / level[:, :, None]
            q = tf.constant(quantiles, tf.float32)
            return tf.reduce_mean(tf.maximum(q * error, (q - 1.0) * error), axis=[1, 2])
        error = (targets - outputs) / level
        return tf.reduce_mean(tf.square(error) if kind == "mse" else tf.abs(error), axis=1)

    relative.__name__ = f"relative_{kind}"

    def mae(targets, outputs):
        targets = tf.cast(tf.reshape(targets, [-1, horizon]), tf.float32)
        if quantiles:
            outputs = tf.reshape(outputs, [-1, horizon, len(quantiles)])[
                :, :, quantiles.index(0.5)]
        return tf.reduce_mean(tf.abs(targets - outputs), axis=1)

    return relative, [keras.metrics.MeanMetricWrapper(mae, name="mae")]
