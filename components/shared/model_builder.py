"""Which model a stage trains (train, and tune's trials): checks before training, then build
and compile.

Builders live in edgepipe.models (or are the user's own, see edgepipe.models.user); before
any training time is spent, this checks that a built-in takes this kind of input and accepts
the configured options, and that a user's builder returns a usable model
(components/shared/model_check.py).
"""

from __future__ import annotations

from typing import Any


def check(model: str, model_options: dict[str, Any], feature: str) -> None:
    """Reject a model that does not take this input, or unknown options, before training
    (the config loader already checked the name and the options)."""
    from edgepipe import models

    models.check_name(model)
    if not models.user.is_reference(model):
        takes = models.INPUT_FEATURES.get(model, ())
        if feature not in takes:
            fitting = sorted(name for name, kinds in models.INPUT_FEATURES.items()
                             if feature in kinds)
            raise ValueError(
                f"[train] model {model!r} takes {' or '.join(map(repr, takes))} inputs but the "
                f"examples hold {feature!r}; set [train] model to one of {fitting}."
            )
    try:
        models.check_options(model, model_options)
    except ValueError as error:
        raise ValueError(f"[train.model_options] has {error}") from None


def data_arguments(spec: dict[str, Any], num_classes: int) -> dict[str, Any]:
    """What a builder takes from the data: the input shape, the number of classes, and the
    normalisation statistics, or for text the vocabulary's size."""
    arguments = {"input_shape": spec["input_shape"], "num_classes": num_classes}
    if spec["input_feature"] == "text":
        return {**arguments, "vocabulary_size": len(spec["vocabulary"])}
    if spec["input_feature"] == "audio":  # raw samples: the model computes its spectrogram
        return {**arguments, "sample_rate": spec["sample_rate"]}
    if spec.get("rgb_to_gray"):  # RGB input, gray training data: converted inside the model
        arguments["rgb_to_gray"] = True
    return {**arguments, **spec["normalization"]}


def build(config, spec: dict[str, Any], num_classes: int):
    """The configured model with its task's head (task_heads.py), uncompiled; a user
    builder's model is checked (it raised, returned a Keras 3 model or the wrong shapes:
    ValueError naming the file and function). A regression model is built as a classifier
    of one "class" per target, whose output layer the regression head replaces."""
    from edgepipe import models
    from edgepipe.components.shared import model_check, task_heads
    from edgepipe.models.keras import keras

    task = spec.get("task", "classification")
    arguments = models.data_arguments(config.model, data_arguments(spec, num_classes))
    if not models.user.is_reference(config.model):
        model = models.build(config.model, **arguments, **config.model_options)
    else:
        model = model_check.call(config.model, arguments, config.model_options)
        model_check.check_model(config.model, model, spec, num_classes)
    return task_heads.HEADS[task](keras, model, spec)


def build_and_compile(keras, config, spec: dict[str, Any], num_classes: int,
                      learning_rate: float, total_steps: int):
    """The configured model, compiled with Adam (constant or cosine-decayed rate)."""
    model = build(config, spec, num_classes)
    compile_model(keras, model, config, learning_rate, total_steps, spec)
    return model


def compile_model(keras, model, config, learning_rate: float, total_steps: int,
                  spec: dict[str, Any] | None = None) -> None:
    """(Re)compile with a fresh Adam whose rate is constant or decays over `total_steps`,
    and the task's loss and metrics (task_heads.LOSSES): the sparse cross-entropy,
    label-smoothed when the config asks for it, or a regression loss."""
    from edgepipe.components.shared import task_heads

    rate = learning_rate
    if config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    task = (spec or {}).get("task", "classification")
    loss, metrics = task_heads.LOSSES[task](keras, config, spec or {})
    model.compile(optimizer=keras.optimizers.Adam(rate), loss=loss, metrics=metrics)


def smoothed_sparse_crossentropy(keras, smoothing: float):
    """Cross-entropy of integer labels against probabilities with label smoothing (tf_keras'
    SparseCategoricalCrossentropy has none): the labels become one-hot inside the loss, so the
    data and the "accuracy" metric stay sparse. Not serialisable: the train stage saves an
    uncompiled copy (components/train/export.py)."""
    import tensorflow as tf

    def loss(labels, probabilities):
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        one_hot = tf.one_hot(labels, tf.shape(probabilities)[-1], dtype=probabilities.dtype)
        return keras.losses.categorical_crossentropy(one_hot, probabilities,
                                                     label_smoothing=smoothing)

    loss.__name__ = f"sparse_crossentropy_smoothed_{smoothing:g}"
    return loss


def preflight(tf, keras, config, spec: dict[str, Any], num_classes: int) -> None:
    """A user builder's model, built once before training and checked: shapes and
    probabilities, conversion to builtin-op TFLite, reload from a .keras file. Built-ins are
    tested to pass (tests/models) and skip this."""
    from edgepipe import models
    from edgepipe.components.shared import model_check

    if models.user.is_reference(config.model):
        model_check.preflight(tf, keras, config.model, build(config, spec, num_classes))
        keras.backend.clear_session()
