"""The audio front end inside a keyword model: raw PCM samples -> log-mel spectrogram (or MFCC).

A device then feeds samples at the model's sample rate and nothing else. Every step is a
constant matmul or elementwise op, as Google's kws_streaming does, so TFLite gets builtin ops
only (no RFFT2D, which needs power-of-two lengths, no Flex): framing and the windowed DFT are
one strided convolution whose kernel holds the Hann-windowed cosine and sine bases, the power
spectrum is its square, the mel filterbank (summing the cosine and sine halves) one matmul,
then log, and for MFCC a DCT-II matmul. The layer sets `keep_float`: the quantize stage keeps
it unquantized in the int8 variants with float32 input (the power spectrum spans too many
decades for one int8 scale); the layers after it are int8.

SpecAugment (`SpecAugment`): random time and frequency bands of the spectrogram set to its
mean while training; nothing at inference (no ops in the converted model).
"""

from __future__ import annotations

import numpy as np

from edgepipe.models.keras import keras  # sets TF_USE_LEGACY_KERAS before TensorFlow loads

import tensorflow as tf  # noqa: E402


def hertz_to_mel(frequency):
    return 2595.0 * np.log10(1.0 + np.asarray(frequency, np.float64) / 700.0)


def mel_matrix(bins: int, fft_bins: int, sample_rate: int, low: float = 20.0,
               high: float | None = None) -> np.ndarray:
    """[fft_bins, bins] triangular mel filters (HTK mel scale), as tf.signal builds them."""
    high = high or sample_rate / 2.0
    frequencies = np.linspace(0.0, sample_rate / 2.0, fft_bins)
    edges = np.linspace(hertz_to_mel(low), hertz_to_mel(high), bins + 2)
    mels = hertz_to_mel(frequencies)[:, None]
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (mels - lower) / (centre - lower)
    falling = (upper - mels) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


def dft_kernel(window: int, fft_length: int) -> np.ndarray:
    """[window, 1, 2 * fft_bins] Hann-windowed cosine then sine bases of a real DFT."""
    fft_bins = fft_length // 2 + 1
    time = np.arange(window)[:, None]
    frequency = np.arange(fft_bins)[None, :]
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)
    angle = 2.0 * np.pi * time * frequency / fft_length
    bases = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1) * hann[:, None]
    return bases[:, None, :].astype(np.float32)


def dct_matrix(bins: int, coefficients: int) -> np.ndarray:
    """[bins, coefficients] orthonormal DCT-II (what tf.signal.mfccs_from_log_mel_spectrograms
    applies, up to its scale)."""
    n = np.arange(bins)[:, None]
    k = np.arange(coefficients)[None, :]
    matrix = np.cos(np.pi / bins * (n + 0.5) * k) * np.sqrt(2.0 / bins)
    matrix[:, 0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


@keras.utils.register_keras_serializable(package="edgepipe")
class LogMel(keras.layers.Layer):
    """[batch, samples] float32 PCM in [-1, 1] -> [batch, frames, mel_bins (or mfcc)]."""

    keep_float = True  # see the module docstring

    def __init__(self, sample_rate: int, window_ms: float = 30.0, hop_ms: float = 20.0,
                 mel_bins: int = 40, mfcc: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.window_ms, self.hop_ms = int(sample_rate), window_ms, hop_ms
        self.mel_bins, self.mfcc = int(mel_bins), int(mfcc)
        self.window = int(round(sample_rate * window_ms / 1000.0))
        self.hop = int(round(sample_rate * hop_ms / 1000.0))
        if self.window < 16 or self.hop < 1 or self.mfcc > self.mel_bins:
            raise ValueError(f"audio front end: window {self.window} samples, hop {self.hop}, "
                             f"{self.mfcc} MFCC of {self.mel_bins} mel bins; need a window of "
                             ">= 16 samples, a hop >= 1 and mfcc <= mel_bins.")
        fft_length = 1 << (self.window - 1).bit_length()
        mel = mel_matrix(self.mel_bins, fft_length // 2 + 1, self.sample_rate)
        self._dft = tf.constant(dft_kernel(self.window, fft_length))
        # The power of a bin is cos^2 + sin^2: one matmul sums both halves into the mel bins.
        self._mel = tf.constant(np.concatenate([mel, mel], axis=0))
        self._dct = tf.constant(dct_matrix(self.mel_bins, self.mfcc)) if self.mfcc else None

    def frames(self, samples: int) -> int:
        return (samples - self.window) // self.hop + 1

    def call(self, inputs):
        spectrum = tf.nn.conv1d(inputs[:, :, None], self._dft, stride=self.hop, padding="VALID")
        mel = tf.matmul(tf.square(spectrum), self._mel)
        features = tf.math.log(mel + 1e-6)
        return tf.matmul(features, self._dct) if self._dct is not None else features

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames(input_shape[1]), self.mfcc or self.mel_bins)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate,
                "window_ms": self.window_ms, "hop_ms": self.hop_ms,
                "mel_bins": self.mel_bins, "mfcc": self.mfcc}


@keras.utils.register_keras_serializable(package="edgepipe")
class SpecAugment(keras.layers.Layer):
    """While training: `time_masks` bands of up to `time_width` frames and `frequency_masks`
    bands of up to `frequency_width` bins, at random places, set to the example's mean."""

    def __init__(self, time_masks: int = 2, time_width: int = 5, frequency_masks: int = 2,
                 frequency_width: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.time_masks, self.time_width = time_masks, time_width
        self.frequency_masks, self.frequency_width = frequency_masks, frequency_width

    def _mask(self, shape, axis: int, count: int, width: int):
        size = shape[axis]
        positions = tf.range(size)[None, :]
        keep = tf.ones([shape[0], size], tf.bool)
        for _ in range(count):
            widths = tf.random.uniform([shape[0], 1], 0, width + 1, dtype=tf.int32)
            starts = tf.random.uniform([shape[0], 1], 0, size, dtype=tf.int32)
            keep &= ~((positions >= starts) & (positions < starts + widths))
        return keep[:, :, None] if axis == 1 else keep[:, None, :]

    def call(self, inputs, training=None):
        if not training:
            return inputs
        shape = tf.shape(inputs)
        keep = (self._mask(shape, 1, self.time_masks, self.time_width)
                & self._mask(shape, 2, self.frequency_masks, self.frequency_width))
        mean = tf.reduce_mean(inputs, axis=[1, 2], keepdims=True)
        return tf.where(keep, inputs, mean)

    def get_config(self):
        return {**super().get_config(), "time_masks": self.time_masks,
                "time_width": self.time_width, "frequency_masks": self.frequency_masks,
                "frequency_width": self.frequency_width}


def spectrogram(inputs, sample_rate: int, window_ms: float, hop_ms: float, mel_bins: int,
                mfcc: int, spec_augment: bool, batch_norm_momentum: float = 0.99):
    """[frames, features, 1] normalised log-mel (or MFCC) image of a [samples] input."""
    # float32 under mixed precision too: the power spectrum spans decades bfloat16 cannot hold
    x = LogMel(sample_rate, window_ms, hop_ms, mel_bins, mfcc, name="log_mel",
               dtype="float32")(inputs)
    if spec_augment:
        x = SpecAugment(name="spec_augment")(x)
    # The spectrogram's scale is learnt (a float BatchNormalization folds into a MUL and ADD).
    x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name="spectrogram_bn")(x)
    return keras.layers.Reshape((*x.shape[1:], 1), name="spectrogram_image")(x)
