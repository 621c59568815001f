"""Fine-tuning optimisations with tensorflow-model-optimization: QAT and magnitude pruning.

Both start from a copy of the trained Keras model and fine-tune it on the train split, read
through the same examples_io tf.data reader and model_inputs rules as the train stage. Layers
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

import numpy as np

from components import examples_io, model_inputs

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


def training_dataset(examples, model_json: dict, batch_size: int, seed: int):
    """(float32 model input, label) batches of the train split, shuffled with `seed`."""
    import tensorflow as tf

    feature = model_json.get("input_feature", "image")
    if feature == "sequence":
        length = int(model_json["input_shape"][0])
        padding = model_json.get("padding", "pre")
        padding_value = model_json.get("padding_value", 0.0)

        def to_pair(record):
            series = model_inputs.pad_sequence_tensor(
                tf, record["sequence"], length, padding, padding_value)
            return series, record["label"]
    elif feature == "image":
        def to_pair(record):
            return record["image"], record["label"]
    else:
        raise ValueError(f"model.json input_feature {feature!r}: fine-tuning reads 'image' or "
                         "'sequence' examples only.")
    size = examples_io.split_size(examples, "train")
    data = examples_io.as_dataset(examples, "train").map(to_pair, tf.data.AUTOTUNE).cache()
    data = data.shuffle(max(size, 1), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    # Images are cached as uint8 (a quarter of float32's memory) and cast per batch.
    data = data.map(lambda inputs, labels: (tf.cast(inputs, tf.float32), labels))
    return data.prefetch(tf.data.AUTOTUNE)


def _copy(model):
    """A copy with the same weights, so fine-tuning never changes the trained model."""
    from models.keras import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _compile(model, learning_rate: float) -> None:
    from models.keras import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


# tfmot's 8-bit scheme has no quantize config for a lone BatchNormalization, but its layout
# transforms match Conv2D/DepthwiseConv2D/Dense -> BatchNormalization (-> ReLU) and quantize
# the pair as one op, the way the TFLite converter folds them.
BATCH_NORM_PRODUCERS = ("Conv2D", "DepthwiseConv2D", "Dense")


def _folded_batch_norm(layer) -> bool:
    """A BatchNormalization whose only input is a conv or dense layer's output."""
    if type(layer).__name__ != "BatchNormalization" or len(layer.inbound_nodes) != 1:
        return False
    producers = layer.inbound_nodes[0].inbound_layers
    producers = producers if isinstance(producers, list) else [producers]
    return (len(producers) == 1 and type(producers[0]).__name__ in BATCH_NORM_PRODUCERS
            and len(producers[0].outbound_nodes) == 1)


def unannotatable_layers(model) -> list[str]:
    """'name (Class)' of every layer tfmot's default 8-bit QAT scheme cannot annotate."""
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()
    return [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
            if type(layer).__name__ not in FLOAT_LAYERS and not registry.supports(layer)
            and not _folded_batch_norm(layer)]


def quantization_aware(model, dataset, epochs: int, learning_rate: float,
                       log: logging.Logger):
    """The model fine-tuned with fake-quantized weights and activations (ready for int8).

    Raises QatUnsupported (before any training) when a layer cannot be annotated.
    """
    import tensorflow_model_optimization as tfmot

    from models.keras import keras

    unsupported = unannotatable_layers(model)
    if unsupported:
        raise QatUnsupported(QAT_UNSUPPORTED.format(layers=", ".join(unsupported)))
    quantization = tfmot.quantization.keras

    def annotate(layer):
        if type(layer).__name__ in FLOAT_LAYERS:
            return layer
        return quantization.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(_copy(model), clone_function=annotate)
    with quantization.quantize_scope():
        qat_model = quantization.quantize_apply(annotated)
    _compile(qat_model, learning_rate)
    history = qat_model.fit(dataset, epochs=epochs, verbose=0)
    log.info("quantize: QAT fine-tuned %d epoch(s), final loss %.4f accuracy %.4f", epochs,
             history.history["loss"][-1], history.history["accuracy"][-1])
    return qat_model


def prune(model, dataset, epochs: int, learning_rate: float, target_sparsity: float,
          log: logging.Logger):
    """(stripped model, sparsity): magnitude-pruned to `target_sparsity` while fine-tuning.

    Sparsity is the measured fraction of zeros over the weights that were pruned (kernels of
    the prunable layers), read after the last mask update.
    """
    import tensorflow_model_optimization as tfmot
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    from models.keras import keras

    sparsity_api = tfmot.sparsity.keras
    total_steps = max(1, epochs * int(dataset.cardinality().numpy()))
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
        if type(layer).__name__ in FLOAT_LAYERS or not prune_registry.PruneRegistry.supports(layer):
            return layer
        return sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule)

    pruned = keras.models.clone_model(_copy(model), clone_function=wrap)
    _compile(pruned, learning_rate)
    pruned.fit(dataset, epochs=epochs, verbose=0, callbacks=[sparsity_api.UpdatePruningStep()])
    weights = [weight.numpy().ravel() for layer in pruned.layers
               for weight, _, _ in getattr(layer, "pruning_vars", [])]
    sparsity = float(np.mean(np.concatenate(weights) == 0)) if weights else 0.0
    log.info("quantize: pruned for %d epoch(s) to sparsity %.3f (target %.2f)",
             epochs, sparsity, target_sparsity)
    return sparsity_api.strip_pruning(pruned), sparsity
