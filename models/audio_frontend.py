"""The audio front end inside a keyword model: raw PCM samples -> log-mel spectrogram (or MFCC).

A device then feeds samples at the model's sample rate and nothing else. Every step is a
slice, reshape, transpose, constant matmul or elementwise op, so TFLite gets builtin ops only
(no RFFT2D, which needs power-of-two lengths, no Flex): framing by strided slices, a Hann
window, the DFT as two small matmul stages with twiddle factors between them (fft_constants:
a direct DFT matrix would weigh 1 MB, more than the whole model may), the power spectrum, the
mel filterbank as one matmul, log, and for MFCC a DCT-II matmul. The layer sets `keep_float`:
the quantize stage keeps it unquantized in the int8 variants with float32 input (the power
spectrum spans too many decades for one int8 scale); the layers after it are int8.

SpecAugment (`SpecAugment`): random time and frequency bands of the spectrogram set to its
mean while training; nothing at inference (no ops in the converted model).
"""

from __future__ import annotations

import numpy as np

from edgepipe.models.audio_math import dct_matrix, fft_constants, mel_matrix
from edgepipe.models.keras import keras  # sets TF_USE_LEGACY_KERAS before TensorFlow loads

import tensorflow as tf  # noqa: E402


LOG_OFFSET, LOG_SCALE = 4.0, 0.2  # (log power + 4) / 5
# Added to the mel energies before the log: a noise floor about 70 dB below a full-scale tone,
# so digital silence (zero padding, a muted microphone) looks like the quietest background the
# model was trained on, not like a value it never saw (with 1e-6 a tiny model heard zeros as a
# keyword with score 1.0).
LOG_FLOOR = 1e-3


@keras.utils.register_keras_serializable(package="edgepipe")
class LogMel(keras.layers.Layer):
    """[batch, samples] float32 PCM in [-1, 1] -> [batch, frames, mel_bins (or mfcc)].

    Frames of `window_ms` every `hop_ms` (strided slices of blocks of gcd(window, hop)
    samples, concatenated), a periodic Hann window, zero-padding to a power of two, the
    two-stage DFT of fft_constants up to `upper_hz`, power, `mel_bins` mel filters from
    `lower_hz` to `upper_hz`, log, and with `mfcc` > 0 that many DCT-II coefficients.
    """

    keep_float = True  # see the module docstring

    def __init__(self, sample_rate: int, window_ms: float = 30.0, hop_ms: float = 20.0,
                 mel_bins: int = 40, mfcc: int = 0, lower_hz: float = 20.0,
                 upper_hz: float = 4000.0, **kwargs):
        super().__init__(**kwargs)
        self.sample_rate, self.window_ms, self.hop_ms = int(sample_rate), window_ms, hop_ms
        self.mel_bins, self.mfcc = int(mel_bins), int(mfcc)
        self.lower_hz, self.upper_hz = float(lower_hz), float(upper_hz)
        self.window = int(round(sample_rate * window_ms / 1000.0))
        self.hop = int(round(sample_rate * hop_ms / 1000.0))
        self.block = int(np.gcd(self.window, self.hop)) if self.window and self.hop else 0
        problems = []
        if self.window < 16 or self.hop < 1:
            problems.append(f"window {self.window} samples and hop {self.hop}: need a window "
                            "of >= 16 samples and a hop >= 1")
        elif self.window // self.block > 64:
            problems.append(f"window {self.window} and hop {self.hop} samples share only "
                            f"{self.block}-sample blocks; choose lengths with a larger common "
                            "divisor (e.g. whole milliseconds that divide each other)")
        if not 0 <= self.lower_hz < self.upper_hz <= sample_rate / 2:
            problems.append(f"lower_hz {lower_hz} and upper_hz {upper_hz} must satisfy 0 <= "
                            f"lower < upper <= {sample_rate / 2:g} (half the sample rate)")
        if self.mfcc > self.mel_bins or self.mel_bins < 1:
            problems.append(f"mfcc {self.mfcc} must be <= mel_bins {self.mel_bins} (>= 1)")
        if problems:
            raise ValueError("audio front end: " + "; ".join(problems) + ".")
        self.fft_length = 1 << (self.window - 1).bit_length()
        bins = int(np.floor(self.upper_hz / sample_rate * self.fft_length)) + 1
        constants = fft_constants(self.fft_length, bins)
        self.n1, self.n2, k2_count = (int(value) for value in constants["shape"])
        mel = mel_matrix(self.mel_bins, self.fft_length // 2 + 1, self.sample_rate,
                         self.lower_hz, self.upper_hz)
        # rows in the [k1, k2] order the DFT leaves its bins in; bins past `bins` weigh 0
        order = (np.arange(self.n1)[:, None] + self.n1 * np.arange(k2_count)[None, :]).ravel()
        reordered = np.zeros((len(order), self.mel_bins), np.float32)
        reordered[order < bins] = mel[order[order < bins]]
        hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(self.window) / self.window)
        as_constant = lambda value: tf.constant(np.asarray(value, np.float32))  # noqa: E731
        self._hann = as_constant(hann)
        self._first, self._second = as_constant(constants["first"]), as_constant(
            constants["second"])
        self._twiddle_cos = as_constant(constants["twiddle_cos"])
        self._twiddle_sin = as_constant(constants["twiddle_sin"])
        self._mel = as_constant(reordered)
        self._k2 = k2_count
        self._dct = as_constant(dct_matrix(self.mel_bins, self.mfcc)) if self.mfcc else None

    def frames(self, samples: int) -> int:
        return (samples - self.window) // self.hop + 1

    def call(self, inputs):
        count = self.frames(inputs.shape[1])
        used = (count - 1) * self.hop + self.window
        blocks = tf.reshape(inputs[:, :used], [-1, used // self.block, self.block])
        step = self.hop // self.block
        frames = tf.concat([blocks[:, index:index + (count - 1) * step + 1:step, :]
                            for index in range(self.window // self.block)], axis=-1)
        frames = tf.pad(frames * self._hann, [[0, 0], [0, 0], [0, self.fft_length - self.window]])
        grid = tf.transpose(tf.reshape(frames, [-1, count, self.n1, self.n2]), [0, 1, 3, 2])
        first = tf.matmul(grid, self._first)  # [batch, frames, n2, real k1 | imaginary k1]
        real, imaginary = first[..., :self.n1], first[..., self.n1:]
        twiddled = tf.concat([real * self._twiddle_cos - imaginary * self._twiddle_sin,
                              real * self._twiddle_sin + imaginary * self._twiddle_cos], -1)
        twiddled = tf.transpose(tf.reshape(twiddled, [-1, count, self.n2, 2, self.n1]),
                                [0, 1, 4, 3, 2])  # [batch, frames, k1, real|imag, n2]
        spectrum = tf.matmul(tf.reshape(twiddled, [-1, count, self.n1, 2 * self.n2]),
                             self._second)
        power = tf.square(spectrum[..., :self._k2]) + tf.square(spectrum[..., self._k2:])
        mel = tf.matmul(tf.reshape(power, [-1, count, self.n1 * self._k2]), self._mel)
        features = tf.math.log(mel + LOG_FLOOR)
        return tf.matmul(features, self._dct) if self._dct is not None else features

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.frames(input_shape[1]), self.mfcc or self.mel_bins)

    def get_config(self):
        return {**super().get_config(), "sample_rate": self.sample_rate,
                "window_ms": self.window_ms, "hop_ms": self.hop_ms,
                "mel_bins": self.mel_bins, "mfcc": self.mfcc, "lower_hz": self.lower_hz,
                "upper_hz": self.upper_hz}


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
                mfcc: int, spec_augment: bool, lower_hz: float = 20.0,
                upper_hz: float = 4000.0):
    """[frames, features, 1] normalised log-mel (or MFCC) image of a [samples] input."""
    # float32 under mixed precision too: the power spectrum spans decades bfloat16 cannot hold
    x = LogMel(sample_rate, window_ms, hop_ms, mel_bins, mfcc, lower_hz, upper_hz,
               name="log_mel", dtype="float32")(inputs)
    if spec_augment:
        x = SpecAugment(name="spec_augment")(x)
    # A fixed affine map of log power (about -14 for silence, +10 for a full-scale tone) to a
    # few units around 0: no state to learn, so nothing differs between training and
    # inference (a batch normalisation here kept its moving statistics far from the
    # silence/speech mixture of the batches for hundreds of steps).
    x = keras.layers.Rescaling(LOG_SCALE, offset=LOG_OFFSET * LOG_SCALE, name="log_scale")(x)
    return keras.layers.Reshape((*x.shape[1:], 1), name="spectrogram_image")(x)
