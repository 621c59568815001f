"""Augmentation of raw-audio training batches, as Speech Commands' training does: each clip
shifted in time by a random amount (zero fill) and, with some probability, background noise
mixed in at a random level. The noise is the training split's own `silence` clips (cut from
`_background_noise_/` by ingest), each scaled to unit RMS, so validation and test never lend
noise to training. SpecAugment, on the spectrogram, is a layer inside the model
(models/audio_frontend.py). TensorFlow is passed in by the caller.
"""

from __future__ import annotations

import numpy as np

from edgepipe.components.shared import examples_io

NOISE_CLASS = "silence"


def noise_pool(examples) -> np.ndarray:
    """float32 [K, samples] unit-RMS noise clips: the train split's `silence` examples that
    hold any sound; [0, samples] when there are none (then no noise is mixed)."""
    names = examples_io.class_names(examples)
    data = examples_io.load_numpy(examples, "train")
    if NOISE_CLASS not in names:
        return np.zeros((0, data["audio"].shape[1]), np.float32)
    clips = data["audio"][data["label"] == names.index(NOISE_CLASS)]
    rms = np.sqrt(np.mean(np.square(clips, dtype=np.float64), axis=1))
    kept = rms > 1e-4
    return (clips[kept] / rms[kept, None]).astype(np.float32)


def arguments(examples, spec: dict, config) -> dict:
    """augment_batch's settings from [train]: the noise pool, the shift in samples."""
    return {"noise": noise_pool(examples),
            "shift": int(round(spec["sample_rate"] * config.augment_shift_ms / 1000.0)),
            "level": config.augment_noise_level,
            "probability": config.augment_noise_probability}


def augment_batch(tf, batch, noise: np.ndarray, shift: int, level: float, probability: float):
    """A [B, samples] float32 batch shifted by up to `shift` samples each way and mixed with a
    random noise clip at an RMS drawn from [0, level] with `probability`, clipped to [-1, 1]."""
    size, length = tf.shape(batch)[0], batch.shape[1]
    if shift:
        padded = tf.pad(batch, [[0, 0], [shift, shift]])
        starts = tf.random.uniform([size], 0, 2 * shift + 1, dtype=tf.int32)
        batch = tf.gather(padded, starts[:, None] + tf.range(length)[None, :], axis=1,
                          batch_dims=1)
    if len(noise) and level > 0:
        pool = tf.constant(noise)
        chosen = tf.gather(pool, tf.random.uniform([size], 0, len(noise), dtype=tf.int32))
        volume = tf.random.uniform([size, 1], 0.0, level) * tf.cast(
            tf.random.uniform([size, 1]) < probability, tf.float32)
        batch = tf.clip_by_value(batch + volume * chosen, -1.0, 1.0)
    return batch
