"""Fine-tuning optimisations with tensorflow-model-optimization: QAT and magnitude pruning.

Both start from a copy of the trained Keras model and fine-tune it on the train split, read
through the same tf.data input pipeline as the train stage (components/shared). Layers
tfmot's registries know are wrapped; preprocessing layers (the Normalization that keeps raw
inputs working) stay in float and are calibrated by the converter like post-training int8.
Batch normalisation right after a convolution or dense layer is quantized with it (tfmot's
layout transforms fold the pair). Any other layer tfmot cannot annotate for QAT (LSTM,
Bidirectional, GRU, a lone BatchNormalization) makes QAT impossible:
`QatUnsupported` says so and the stage records the variant as skipped instead of failing.
TensorFlow and tfmot are imported inside the functions that use them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np


# Layers left in float inside a QAT or pruned model: they only rescale the raw input.
FLOAT_LAYERS = ("InputLayer", "Normalization", "Rescaling")

QAT_UNSUPPORTED = (
    "quantization-aware training skipped: tensorflow-model-optimization cannot annotate "
    "layer(s) {layers} for int8 training (its default 8-bit registry has no quantize config "
    "for them; recurrent layers such as LSTM are not supported). The post-training 'int8' "
    "variant quantizes this model instead."
)


class QatUnsupported(RuntimeError):
    """The model has layers tfmot cannot annotate; the message is the documented reason."""


def _copy(model):
    """A copy with the same weights, so fine-tuning never changes the trained model."""
    from edgepipe.models.keras import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


# A classifier's fine-tuning objective: (loss, metrics). Other tasks pass their own
# (components/shared/task_heads.LOSSES through the stage).
CLASSIFICATION_OBJECTIVE = ("sparse_categorical_crossentropy", ["accuracy"])


def _compile(model, learning_rate: float, decay_steps: int | None = None,
             objective=CLASSIFICATION_OBJECTIVE) -> None:
    """Adam at `learning_rate`; with `decay_steps`, decaying to 0 over them (cosine).

    QAT decays: the trained model ended its own schedule near 0, and a constant rate knocks it
    off its minimum (full Fashion-MNIST, cnn_bn: 0.9327 at a constant 1e-4 for one epoch,
    0.9363 decaying over three). Pruning keeps a constant rate: its masks tighten until the
    last step, and the weights left need a live rate to recover (0.9313 constant, 0.9248
    decayed, same run).
    """
    from edgepipe.models.keras import keras

    rate = (keras.optimizers.schedules.CosineDecay(learning_rate, max(1, decay_steps))
            if decay_steps else learning_rate)
    loss, metrics = objective
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=metrics)


def _steps(dataset, epochs: float) -> int:
    """Optimizer steps of `epochs` passes over `dataset` (its batch count must be known); a
    fraction of an epoch is that share of its batches, at least one."""
    batches = int(dataset.cardinality().numpy())
    if batches < 0:
        raise ValueError("the fine-tuning dataset has no known length; build it with "
                         "input_pipeline.dataset without repeat (or .take(n)).")
    return max(1, round(epochs * batches))


def _fit(model, dataset, steps: int, callbacks=()):
    """Fit for exactly `steps` batches: the dataset repeats (reshuffled each pass), so whole
    and fractional epochs both work."""
    return model.fit(dataset.repeat(), epochs=1, steps_per_epoch=steps, verbose=0,
                     callbacks=list(callbacks))


# tfmot's 8-bit scheme trains a BatchNormalization next to the conv before it, which the
# TFLite converter then folds into the conv's weights: the deployed int8 weights are not the
# ones QAT simulated (measured on full Fashion-MNIST with cnn_bn: 0.924 after QAT against 0.934
# for post-training int8). So QAT starts from a copy with each such batch norm folded into its
# conv or dense layer first: the same function in float, and the weights QAT sees are the
# deployed ones.
BATCH_NORM_PRODUCERS = ("Conv2D", "DepthwiseConv2D", "Dense")


def _producer(layer):
    """The one layer whose output `layer` reads, or None."""
    if len(layer.inbound_nodes) != 1:
        return None
    producers = layer.inbound_nodes[0].inbound_layers
    producers = producers if isinstance(producers, list) else [producers]
    return producers[0] if len(producers) == 1 else None


def _folded_batch_norm(layer) -> bool:
    """A BatchNormalization over the channels (last axis) that is the only reader of a conv or
    dense layer's output."""
    producer = _producer(layer)
    return (type(layer).__name__ == "BatchNormalization" and producer is not None
            and list(layer.axis) == [len(layer.input_shape) - 1]
            and type(producer).__name__ in BATCH_NORM_PRODUCERS
            and len(producer.outbound_nodes) == 1 and len(layer.inbound_nodes) == 1)


def fold_batch_norms(model):
    """A copy of `model` with every batch norm that follows a conv or dense layer folded into
    that layer (kernel scaled per output channel, bias added): the same inference function."""
    import tensorflow as tf

    from edgepipe.models.keras import keras

    folds = {_producer(layer).name: layer for layer in model.layers if _folded_batch_norm(layer)}
    if not folds:
        return _copy(model)
    new_tensors: dict[int, Any] = {}  # id of a tensor of `model` -> the copy's tensor
    for layer in model.layers:
        node = layer.inbound_nodes[0]
        if isinstance(layer, keras.layers.InputLayer):
            (tensor,) = node.outputs if isinstance(node.outputs, list) else [node.outputs]
            new_tensors[id(tensor)] = keras.Input(tensor.shape[1:], dtype=tensor.dtype,
                                                  name=layer.name)
            continue
        if type(layer).__name__ == "BatchNormalization" and layer.name in {
                norm.name for norm in folds.values()}:
            continue  # its output was mapped when its producer was folded
        config = layer.get_config()
        if layer.name in folds:
            config["use_bias"] = True
        copy = type(layer).from_config(config)
        inputs = node.input_tensors
        output = copy(tf.nest.map_structure(lambda tensor: new_tensors[id(tensor)], inputs))
        if layer.name in folds:
            norm = folds[layer.name]
            mean, variance = norm.moving_mean.numpy(), norm.moving_variance.numpy()
            gamma = norm.gamma.numpy() if norm.scale else np.ones_like(mean)
            beta = norm.beta.numpy() if norm.center else np.zeros_like(mean)
            scale = gamma / np.sqrt(variance + norm.epsilon)
            kernel, *bias = layer.get_weights()
            bias = bias[0] if bias else np.zeros_like(mean)
            # Conv2D/Dense kernels end in the output channel; DepthwiseConv2D's in
            # (channels, multiplier): both broadcast against a per-channel vector reshaped so.
            shape = (kernel.shape[-2], kernel.shape[-1]) if type(layer).__name__ == \
                "DepthwiseConv2D" else (kernel.shape[-1],)
            copy.set_weights([kernel * scale.reshape(shape), (bias - mean) * scale + beta])
            new_tensors[id(norm.output)] = output
        elif layer.get_weights():
            copy.set_weights(layer.get_weights())
        new_tensors[id(layer.output)] = output
    outputs = [new_tensors[id(tensor)] for tensor in model.outputs]
    return keras.Model([new_tensors[id(tensor)] for tensor in model.inputs],
                       outputs if len(outputs) > 1 else outputs[0], name=model.name)


def unannotatable_layers(model) -> list[str]:
    """'name (Class)' of every layer tfmot's default 8-bit QAT scheme cannot annotate."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    found = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
             if type(layer).__name__ not in FLOAT_LAYERS and not registry.supports(layer)
             and not _folded_batch_norm(layer)]
    return found + [f"{layer.name} ({type(layer).__name__} {name})" for layer in model.layers
                    if (name := _activation(layer)) and name not in QAT_ACTIVATIONS]


# The activations tfmot's default 8-bit scheme quantizes (Default8BitActivationQuantizeConfig);
# any other (elu, selu) fails inside quantize_apply, so QAT is skipped for it instead.
QAT_ACTIVATIONS = ("linear", "relu", "relu6", "swish", "gelu", "softmax", "sigmoid", "tanh")


def _activation(layer) -> str | None:
    """The name of a layer's activation function, or None if it has none."""
    function = getattr(layer, "activation", None)
    return getattr(function, "__name__", None) if callable(function) else None


def quantization_aware(model, dataset, epochs: float, learning_rate: float,
                       log: logging.Logger, objective=CLASSIFICATION_OBJECTIVE):
    """The model fine-tuned with fake-quantized weights and activations (ready for int8).

    Raises QatUnsupported (before any training) when a layer cannot be annotated.
    """
    import tensorflow_model_optimization as tfmot

    from edgepipe.models.keras import keras

    unsupported = unannotatable_layers(model)
    if unsupported:
        raise QatUnsupported(QAT_UNSUPPORTED.format(layers=", ".join(unsupported)))
    quantization = tfmot.quantization.keras

    def annotate(layer):
        if type(layer).__name__ in FLOAT_LAYERS:
            return layer
        return quantization.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(fold_batch_norms(model), clone_function=annotate)
    with quantization.quantize_scope():
        qat_model = quantization.quantize_apply(annotated)
    steps = _steps(dataset, epochs)
    _compile(qat_model, learning_rate, steps, objective)
    history = _fit(qat_model, dataset, steps)
    log.info("quantize: QAT fine-tuned %g epoch(s) (%d steps), %s", epochs, steps,
             ", ".join(f"{name} {values[-1]:.4f}" for name, values in history.history.items()))
    return qat_model


def prune(model, dataset, epochs: float, learning_rate: float, target_sparsity: float,
          log: logging.Logger, objective=CLASSIFICATION_OBJECTIVE):
    """(stripped model, sparsity): magnitude-pruned to `target_sparsity` while fine-tuning.

    Sparsity is the measured fraction of zeros over the weights that were pruned (kernels of
    the prunable layers), read after the last mask update.
    """
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    from edgepipe.models.keras import keras

    sparsity_api = tfmot.sparsity.keras
    total_steps = _steps(dataset, epochs)
    # Raise sparsity gradually over the fine-tune, updating masks about ten times; the last
    # update lands on end_step, so the final masks have exactly the target sparsity.
    frequency = max(1, total_steps // 10)
    end_step = ((total_steps - 1) // frequency) * frequency
    if end_step > 0:
        schedule = sparsity_api.PolynomialDecay(0.0, target_sparsity, 0, end_step,
                                                frequency=frequency)
    else:
        schedule = sparsity_api.ConstantSparsity(target_sparsity, 0, frequency=1)

    def wrap(layer):
        if (type(layer).__name__ in FLOAT_LAYERS or not layer.trainable  # frozen: RGB to gray
                or not prune_registry.PruneRegistry.supports(layer)):
            return layer
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruned = keras.models.clone_model(_copy(model), clone_function=wrap)
    _compile(pruned, learning_rate, None, objective)
    _fit(pruned, dataset, total_steps, [sparsity_api.UpdatePruningStep()])
    weights = [weight.numpy().ravel() for layer in pruned.layers
               for weight, _, _ in getattr(layer, "pruning_vars", [])]
    sparsity = float(np.mean(np.concatenate(weights) == 0)) if weights else 0.0
    log.info("quantize: pruned for %g epoch(s) (%d steps) to sparsity %.3f (target %.2f)",
             epochs, total_steps, sparsity, target_sparsity)
    return sparsity_api.strip_pruning(pruned), sparsity


FINE_TUNED = ("qat_int8", "pruned_int8")


def skip_reason(model, variant: str) -> str | None:
    """Why `variant` cannot fine-tune this model, known before any data is read; else None."""
    unsupported = unannotatable_layers(model) if variant == "qat_int8" else []
    return QAT_UNSUPPORTED.format(layers=", ".join(unsupported)) if unsupported else None


def fine_tune(model, variant: str, config, dataset, log: logging.Logger,
              objective=CLASSIFICATION_OBJECTIVE) -> tuple[Any, dict] | str:
    """(fine-tuned copy, extra variants.json fields) of a FINE_TUNED variant on `dataset`,
    minimising `objective` ((loss, metrics): the model's task's), or the reason it is
    skipped."""
    try:
        if variant == "qat_int8":
            rate = config.qat_learning_rate or config.fine_tune_learning_rate
            return quantization_aware(model, dataset, config.qat_epochs, rate, log,
                                      objective), {}
        pruned, sparsity = prune(model, dataset, config.pruning_epochs,
                                 config.fine_tune_learning_rate, config.pruning_sparsity, log,
                                 objective)
        return pruned, {"sparsity": round(sparsity, 4)}
    except QatUnsupported as reason:
        return str(reason)
