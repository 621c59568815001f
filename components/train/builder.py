"""Which model the train stage builds: checks before training, then build and compile.

Builders live in edgepipe.models; the stage checks, before any training time is spent, that
the configured builder takes this kind of input and accepts the configured options.
"""

from __future__ import annotations

from typing import Any


def check(model: str, model_options: dict[str, Any], feature: str) -> None:
    """Reject a model that does not take this input, or unknown options, before training
    (the config loader already checked the name and the options)."""
    from edgepipe import models

    models.check_name(model)
    takes = models.INPUT_FEATURES.get(model)
    if takes != feature:
        fitting = sorted(name for name, kind in models.INPUT_FEATURES.items() if kind == feature)
        raise ValueError(
            f"[train] model {model!r} takes {takes!r} inputs but the examples hold "
            f"{feature!r}; set [train] model to one of {fitting}."
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
    if spec.get("rgb_to_gray"):  # RGB input, gray training data: converted inside the model
        arguments["rgb_to_gray"] = True
    return {**arguments, **spec["normalization"]}


def build_and_compile(keras, config, spec: dict[str, Any], num_classes: int,
                      learning_rate: float, total_steps: int):
    """The configured model, compiled with Adam (constant or cosine-decayed rate)."""
    from edgepipe import models

    model = models.build(config.model, **data_arguments(spec, num_classes),
                         **config.model_options)
    compile_model(keras, model, config, learning_rate, total_steps)
    return model


def compile_model(keras, model, config, learning_rate: float, total_steps: int) -> None:
    """(Re)compile with a fresh Adam whose rate is constant or decays over `total_steps`."""
    rate = learning_rate
    if config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    model.compile(optimizer=keras.optimizers.Adam(rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
