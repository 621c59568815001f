"""Your own model for edgepipe: a small depthwise-separable CNN, with no edgepipe import.

Point a config at it with `[train] model = "my_model.py:build"` (relative to the config file)
and give its options in `[train.model_options]`. edgepipe calls `build` with the data's
arguments it declares (input_shape, num_classes, and mean/variance of the raw input over the
training split, or vocabulary_size for text) plus those options, and needs back a tf_keras
model (Keras 2: `import tf_keras as keras`) from the raw input to one probability per class.
Editing this file re-runs training (its content is part of the train stage's cache key).
"""

import tf_keras as keras


def build(input_shape, num_classes, mean, variance, width=16, dropout=0.25):
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    # The model owns its normalisation: clients send raw pixels, as the data was ingested.
    x = keras.layers.Normalization(mean=mean, variance=variance)(inputs)
    x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    # A depthwise-separable convolution as two layers (depthwise 3x3, pointwise 1x1), which
    # quantization-aware training can annotate (a SeparableConv2D layer it cannot).
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(2 * width, 1, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="my_model")
