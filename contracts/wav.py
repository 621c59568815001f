"""WAV bytes -> mono float32 samples at a wanted rate: the one decoder ingest, `edgepipe
listen` and the model server share (numpy only; resampling needs scipy, imported when used).

RIFF chunks are walked by hand rather than with the standard library's `wave` (which reads
integer PCM only and trusts the header's frame count): integer PCM of 8 (unsigned), 16, 24
and 32 bits and IEEE float of 32 and 64 bits, plain or WAVE_FORMAT_EXTENSIBLE, any channel
count (averaged to mono). Every length comes from the bytes really present, never from the
header alone, so a lying header costs nothing; a header that promises more data than the file
holds is an error saying so.
"""

from __future__ import annotations

import struct

import numpy as np

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE


class WavError(ValueError):
    """A file that is not a WAV this decoder reads; `reason` is a short quarantine reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """(float32 mono samples in [-1, 1], sample rate) of a WAV file's bytes."""
    if len(data) == 0:
        raise WavError("empty_file", "the file is empty (0 bytes)")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavError("not_wav", f"not a RIFF/WAVE file (starts with {data[:12]!r}); "
                       "expected a WAV file")
    fmt, samples, offset = None, None, 12
    while offset + 8 <= len(data):
        name, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        if name == b"fmt ":
            fmt = _format(body)
        elif name == b"data":
            if fmt is None:
                raise WavError("bad_header", "the data chunk comes before the fmt chunk")
            if len(body) < size:
                raise WavError("truncated", f"the header promises {size:,} bytes of samples, "
                               f"the file holds {len(body):,}: the file is cut short")
            samples = _samples(body, *fmt)
            break
        offset += 8 + size + (size & 1)  # chunks are padded to an even length
    if fmt is None:
        raise WavError("bad_header" if len(data) > 12 else "truncated",
                       "no fmt chunk: the header is missing or cut short")
    if samples is None:
        raise WavError("truncated", "no data chunk: the file ends before its samples")
    return samples, fmt[3]


def _format(body: bytes) -> tuple[int, int, int, int]:
    """(format tag, channels, bits per sample, rate) of a fmt chunk, checked."""
    if len(body) < 16:
        raise WavError("bad_header", f"the fmt chunk holds {len(body)} bytes, expected >= 16")
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == EXTENSIBLE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]  # the sub-format GUID's first two bytes
    if tag not in (PCM, IEEE_FLOAT) or (tag == PCM and bits not in (8, 16, 24, 32)) or (
            tag == IEEE_FLOAT and bits not in (32, 64)):
        raise WavError("unsupported_format",
                       f"format tag {tag} with {bits} bits per sample; expected integer PCM "
                       "(8/16/24/32 bits) or IEEE float (32/64 bits); convert it, e.g. "
                       "`sox in.wav -b 16 out.wav`")
    if channels < 1 or not 1000 <= rate <= 384000:
        raise WavError("bad_header", f"{channels} channels at {rate} Hz")
    return tag, channels, bits, rate


def _samples(body: bytes, tag: int, channels: int, bits: int, rate: int) -> np.ndarray:
    width = bits // 8
    frames = len(body) // (width * channels)
    raw = body[:frames * width * channels]
    if tag == IEEE_FLOAT:
        values = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 8:  # 8-bit WAV is unsigned, centred on 128
        values = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif bits == 24:
        bytes3 = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = ((bytes3[:, 0] | bytes3[:, 1] << 8 | bytes3[:, 2] << 16) << 8 >> 8)
        values = values.astype(np.float32) / float(1 << 23)
    else:
        values = np.frombuffer(raw, dtype=f"<i{width}").astype(np.float32) / float(
            1 << (bits - 1))
    return values.reshape(frames, channels).mean(axis=1, dtype=np.float32)


def resample(samples: np.ndarray, rate: int, wanted: int) -> np.ndarray:
    """Polyphase resampling (scipy) from `rate` to `wanted` Hz."""
    if rate == wanted:
        return samples.astype(np.float32, copy=False)
    try:
        from scipy import signal
    except ImportError:  # the model server's image has numpy and LiteRT only
        raise ValueError(f"the audio is at {rate} Hz and resampling it to {wanted} Hz needs "
                         f"scipy, which is not installed here; send audio at {wanted} Hz") from None

    divisor = np.gcd(int(rate), int(wanted))
    return signal.resample_poly(samples, wanted // divisor, rate // divisor).astype(np.float32)


def fit(samples: np.ndarray, length: int) -> np.ndarray:
    """Pad with zeros after, or cut to, `length` samples."""
    out = np.zeros(length, dtype=np.float32)
    out[:min(length, len(samples))] = samples[:length]
    return out


def encode(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono WAV bytes of float samples in [-1, 1] (for tests, reports, clients)."""
    pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32767.0), -32768, 32767)
    data = pcm.astype("<i2").tobytes()
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, PCM, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(data)) + data)
