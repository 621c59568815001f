"""The Examples' PNG writer and its fast reader: other decoders read what it writes pixel for
pixel, and the fast reader declines (returns None) every PNG it does not fully understand."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from edgepipe.components.shared import png

RANDOM = np.random.default_rng(0)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_tensorflow_and_pil_read_the_written_png_pixel_for_pixel(channels):
    import tensorflow as tf

    image = RANDOM.integers(0, 256, size=(28, 17, channels), dtype=np.uint8)
    encoded = png.encode(image)
    assert np.array_equal(tf.io.decode_png(encoded, channels=channels).numpy(), image)
    decoded = np.asarray(Image.open(io.BytesIO(encoded)))
    assert np.array_equal(decoded.reshape(image.shape), image)
    assert np.array_equal(png.decode_plain(encoded), image)


def test_the_fast_reader_declines_pngs_that_other_encoders_wrote():
    import tensorflow as tf

    image = np.tile(np.arange(28, dtype=np.uint8), (28, 1))[:, :, None]  # filters pay here
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0]).save(buffer, format="PNG", optimize=True)
    assert png.decode_plain(buffer.getvalue()) is None  # PIL filtered its rows
    assert png.decode_plain(tf.io.encode_png(image).numpy()) is None
    assert png.decode_plain(b"\xff\xd8\xff\xe0 a JPEG") is None
    assert png.decode_plain(png.encode(image)[:-12]) is None  # no IEND


def test_a_corrupt_png_is_an_error_not_another_image():
    encoded = bytearray(png.encode(np.zeros((4, 4, 1), dtype=np.uint8)))
    encoded[45] ^= 0xFF  # inside the IDAT data
    with pytest.raises(ValueError, match="CRC"):
        png.decode_plain(bytes(encoded))


def test_only_8_bit_images_of_one_to_four_channels_are_encoded():
    with pytest.raises(ValueError, match=r"uint8 \[height, width, 1..4\].*float32"):
        png.encode(np.zeros((4, 4, 1), dtype=np.float32))


def test_statistics_names_the_example_whose_image_is_corrupt(examples_artifact):
    from tensorflow.core.example import example_pb2

    from edgepipe.components.statistics import combine

    encoded = bytearray(png.encode(np.zeros((4, 4, 1), dtype=np.uint8)))
    encoded[45] ^= 0xFF
    example = example_pb2.Example()
    example.features.feature["id"].bytes_list.value.append(b"train-images:7")
    example.features.feature["image"].bytes_list.value.append(bytes(encoded))
    example.features.feature["label"].int64_list.value.append(3)
    with pytest.raises(ValueError, match=r"'train-images:7'.*corrupt.*re-run the ingest"):
        combine._decode(example.SerializeToString(), str(examples_artifact.path), "image")
