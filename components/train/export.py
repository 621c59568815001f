"""What the train stage writes of a fitted model: the Keras file, the vocabulary of a text
model, and the SavedModel whose serving signature takes the raw input."""

from __future__ import annotations

import pathlib
from typing import Any

from edgepipe.components.shared import task_heads
from edgepipe.contracts import artifacts, tasks, text_tokens


def float32_copy(keras, model):
    """The trained model rebuilt with every layer under the float32 policy and the trained
    weights copied in, uncompiled. A model trained under mixed_bfloat16 does not convert to
    full int8 as it is (its bfloat16 Normalization subtract is no TFLite builtin op: "'tf.Sub'
    op is neither a custom op nor a flex op"); the copy converts like a float32-trained model.
    Uncompiled, model.keras carries no loss either (a label-smoothed loss is a Python function
    that loading could not find) and no optimizer state."""
    def clone(layer):
        if isinstance(layer, keras.Model):  # a nested model (forecasting's body): its layers
            return keras.models.clone_model(layer, clone_function=clone)
        config = layer.get_config()
        if "dtype" in config:
            config["dtype"] = "float32"
        return type(layer).from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def save(tf, model, spec: dict[str, Any], folder: pathlib.Path) -> None:
    """model.keras, vocabulary.txt (text) and saved_model/ in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / artifacts.KERAS_MODEL)
    if spec["input_feature"] == "text":
        text_tokens.write_vocabulary(folder / text_tokens.VOCABULARY_FILE, spec["vocabulary"])
    export_serving(tf, model, spec, folder / artifacts.SAVED_MODEL)


def export_serving(tf, model, spec: dict[str, Any], path: pathlib.Path) -> None:
    """SavedModel whose serving signature takes the raw input as a deployment feeds it:
    `image` uint8 [None, H, W, C], `sequence` float32 [None, T, C] (padded) or `tokens`
    int32 [None, T] (token ids of texts, see edgepipe.contracts.text_tokens); it returns the
    task's output ("probabilities" of a classifier, "values" of a regression model)."""
    module = tf.Module()
    # Track the variables, not the Keras model: saving a Keras model object here would make
    # tf.saved_model.save trace all of Keras's own functions too.
    module.variables_to_save = list(model.variables)
    feature = spec["input_feature"]
    text = feature == "text"
    signature = tf.TensorSpec([None, *spec["input_shape"]], tf.as_dtype(spec["input_dtype"]),
                              name="tokens" if text else feature)

    task = tasks.of_name(spec.get("task", tasks.CLASSIFICATION.name))

    @tf.function(input_signature=[signature])
    def serve(values):
        inputs = values if text else tf.cast(values, tf.float32)
        return task_heads.serving_outputs(tf, task.name, task.output,
                                          model(inputs, training=False), spec)

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def model_info(config, spec: dict, params: int, placement, fitted) -> dict[str, Any]:
    """model.json: what the model takes and returns (every consumer reads it: the task, its
    class names or target names), and how it was trained."""
    return {
        "model": config.model,
        "model_options": config.model_options,
        **{key: value for key, value in spec.items() if key != "normalization"},
        "loss": config.loss or tasks.for_model(config.task, config.model).default_loss,
        "normalization": spec.get("normalization"),
        "params": params,
        "strategy": placement.description,
        "replicas": placement.replicas,
        "global_batch_size": placement.global_batch,
        "learning_rate": placement.learning_rate,
        "lr_scaling": config.lr_scaling,
        "lr_schedule": config.lr_schedule,
        "precision": config.precision,
        "epochs": len(fitted.history.get("loss", [])),
        "resumed_from_epoch": fitted.resumed_from_epoch,
        "semi_supervised": config.semi_supervised.model_dump() if config.semi_supervised
        else None,
    }
