"""The numbers of the audio front end, in numpy (no TensorFlow): mel filters, the two-stage
DFT's matrices, the DCT, and a reference log-mel spectrogram that reports and `edgepipe
listen` can draw without loading a model. models/audio_frontend.py builds the layer from them.
"""

from __future__ import annotations

import numpy as np


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


def split_fft(length: int) -> tuple[int, int]:
    """(N1, N2) with N1 * N2 = length (a power of two), as square as possible."""
    bits = length.bit_length() - 1
    first = 1 << (bits // 2)
    return first, length // first


def fft_constants(fft_length: int, bins: int) -> dict[str, np.ndarray]:
    """The matrices of a two-stage (Cooley-Tukey, N = N1 x N2) real DFT as matmuls, keeping
    output bins 0..bins-1 only. A frame f[n1 * N2 + n2] is reshaped [N1, N2]; stage one is an
    N1-point DFT over n1 (`first`: [N1, 2 N1], cosines then negative sines), then the twiddle
    factors W_N^(n2 k1) (`twiddle_cos`, `twiddle_sin`: [N2, N1]), then an N2-point DFT over n2
    (`second`: [2 N2, 2 K2] acting on [real | imaginary], K2 = the k2 needed for `bins`):
    bin k1 + N1 k2 lands at [k1, k2]. A few KB of constants instead of the window x bins
    matrix of a direct DFT (480 x 514 floats, 1 MB, for 30 ms at 16 kHz)."""
    n1, n2 = split_fft(fft_length)
    k2_count = (bins - 1) // n1 + 1
    first_angle = 2 * np.pi * np.outer(np.arange(n1), np.arange(n1)) / n1
    twiddle = 2 * np.pi * np.outer(np.arange(n2), np.arange(n1)) / fft_length
    second_angle = 2 * np.pi * np.outer(np.arange(n2), np.arange(k2_count)) / n2
    cos2, sin2 = np.cos(second_angle), -np.sin(second_angle)
    return {
        "first": np.concatenate([np.cos(first_angle), -np.sin(first_angle)], axis=1),
        "twiddle_cos": np.cos(twiddle), "twiddle_sin": -np.sin(twiddle),
        # [Zr | Zi] @ second = [Zr C - Zi S | Zr S + Zi C]
        "second": np.block([[cos2, sin2], [-sin2, cos2]]),
        "shape": np.array([n1, n2, k2_count]),
    }


def dct_matrix(bins: int, coefficients: int) -> np.ndarray:
    """[bins, coefficients] orthonormal DCT-II (what tf.signal.mfccs_from_log_mel_spectrograms
    applies, up to its scale)."""
    n = np.arange(bins)[:, None]
    k = np.arange(coefficients)[None, :]
    matrix = np.cos(np.pi / bins * (n + 0.5) * k) * np.sqrt(2.0 / bins)
    matrix[:, 0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def log_mel(samples: np.ndarray, sample_rate: int, window_ms: float = 30.0,
            hop_ms: float = 20.0, mel_bins: int = 40, lower_hz: float = 20.0,
            upper_hz: float = 4000.0) -> np.ndarray:
    """[frames, mel_bins] log-mel spectrogram of one clip (numpy rfft; for pictures)."""
    window = int(round(sample_rate * window_ms / 1000.0))
    hop = int(round(sample_rate * hop_ms / 1000.0))
    fft_length = 1 << (window - 1).bit_length()
    count = max(0, (len(samples) - window) // hop + 1)
    index = np.arange(window)[None, :] + hop * np.arange(count)[:, None]
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window) / window)
    power = np.abs(np.fft.rfft(samples[index] * hann, fft_length)) ** 2
    mel = mel_matrix(mel_bins, fft_length // 2 + 1, sample_rate, lower_hz, upper_hz)
    return np.log(power @ mel + 1e-3).astype(np.float32)  # audio_frontend.LOG_FLOOR
