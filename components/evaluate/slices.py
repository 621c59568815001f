"""What the evaluate stage slices its metrics by: a derived feature of each test example
(images: brightness; sequences and texts: length) or another feature of the examples."""

from __future__ import annotations

import numpy as np

from edgepipe.components.shared import examples_io
from edgepipe.contracts import text_tokens


def slice_features(examples, feature: str, test: dict, config) -> dict[str, tuple]:
    """{slice name: (one value per test example, what the value means)}."""
    derived = {"image": "brightness", "sequence": "length", "text": "length",
               "audio": "level"}
    names = config.slices if config.slices is not None else (derived[feature],)
    result = {}
    for name in names:
        if name == "brightness" and feature == "image":
            values = np.stack(test["image"]).reshape(len(test["id"]), -1).mean(axis=1)
            result[name] = (values, "mean pixel value of the image (0..255)")
        elif name == "level" and feature == "audio":
            rms = np.sqrt(np.mean(np.square(test["audio"], dtype=np.float64), axis=1))
            values = 20 * np.log10(np.maximum(rms, 1e-5))
            result[name] = (values, "RMS level of the clip (dBFS)")
        elif name == "length" and feature == "sequence":
            values = np.array([len(value) for value in test[feature]])
            result[name] = (values, "length of the sequence in steps")
        elif name == "length" and feature == "text":  # what the model reads: tokens
            values = np.array([len(text_tokens.tokenize(value)) for value in test[feature]])
            result[name] = (values, "length of the text in tokens (before padding or "
                                    "truncation to the model's length)")
        elif name in ("label", "target"):
            raise ValueError(
                f"[evaluate] slices: {name!r} is the label itself; the per-class metrics "
                "already slice by it. Slice by a derived feature (brightness, length) instead.")
        else:
            available = sorted(set(examples_io.features(examples.path).keys())
                               - {"id", "label", "target", feature})
            if name not in available:
                allowed = [derived[feature]] + available
                raise ValueError(f"[evaluate] slices: unknown feature {name!r} for {feature} "
                                 f"examples at {examples.path}; choose from {allowed}.")
            result[name] = (_feature_values(examples.path, name), f"feature {name!r}")
    return result


def _feature_values(path, name: str) -> np.ndarray:
    import tensorflow_datasets as tfds

    values = [record[name] for record in tfds.as_numpy(examples_io.as_dataset(path, "test"))]
    return np.array([value.decode() if isinstance(value, bytes) else value for value in values])

