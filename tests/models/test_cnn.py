"""The CNN builder: shapes, size, the normalisation it owns, and that it learns."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.models import build, cnn

MEAN = 72.9
STD = 90.0


@pytest.fixture(scope="module")
def model():
    return cnn.build((28, 28, 1), 10, mean=MEAN, variance=STD**2)


def test_output_is_a_probability_per_class(model):
    images = np.random.default_rng(0).integers(0, 256, size=(5, 28, 28, 1)).astype("float32")
    probabilities = model.predict(images, verbose=0)
    assert probabilities.shape == (5, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


def test_parameter_count_is_documented_size(model):
    assert model.count_params() == 421_642


def test_registry_builds_the_same_model_with_options():
    small = build("cnn", input_shape=(28, 28, 1), num_classes=3, mean=0.0, variance=1.0,
                  filters=(8,), dense_units=16)
    assert small.output_shape == (None, 3)
    # conv 8*(9+1) + dense (14*14*8)*16+16 + output 16*3+3
    assert small.count_params() == 80 + (14 * 14 * 8 * 16 + 16) + 51
    with pytest.raises(ValueError, match="Unknown model 'resnet'"):
        build("resnet", input_shape=(28, 28, 1), num_classes=3, mean=0.0, variance=1.0)


def test_normalisation_maps_mean_to_zero_and_std_to_one(model):
    from edgepipe.models.keras import keras

    normalize = keras.Model(model.input, model.get_layer("normalize").output)
    images = np.stack([np.full((28, 28, 1), MEAN), np.full((28, 28, 1), MEAN + STD)])
    normalized = normalize.predict(images.astype("float32"), verbose=0)
    np.testing.assert_allclose(normalized[0], 0.0, atol=1e-5)
    np.testing.assert_allclose(normalized[1], 1.0, atol=1e-5)


def test_one_training_step_changes_the_weights():
    from edgepipe.models.keras import keras

    keras.utils.set_random_seed(3)
    model = cnn.build((28, 28, 1), 10, mean=MEAN, variance=STD**2)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(16, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, size=16)
    before = [weight.copy() for weight in model.get_weights()]
    loss = model.train_on_batch(images, labels)
    after = model.get_weights()
    assert np.isfinite(loss)
    assert len(after) == 8  # conv1, conv2, dense, probabilities: kernel and bias each
    for weight, old, new in zip(model.weights, before, after):
        assert not np.array_equal(old, new), f"{weight.name} did not change in a training step"
