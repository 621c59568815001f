"""Generate a spoken-keyword data set in the Speech Commands layout with Debian's espeak-ng.

    python data/make_speech_commands.py OUT_DIR [--renditions 3] [--seed 0] [--workers 2]

Writes OUT_DIR/<word>/<speaker>_nohash_<n>.wav (16 kHz, 16-bit mono, 1 s), a
`_background_noise_/` folder of generated noise recordings, and `validation_list.txt` /
`testing_list.txt` naming whole speakers, so a speaker (an espeak-ng voice with one variant)
never appears in two splits: the test voices are held out. Each rendition varies the speed,
pitch, amplitude and word gap, and is placed at a random offset over noise at a random level.
Deterministic for a seed (espeak-ng itself is deterministic).

The same layout holds the real Speech Commands set (v0.02, CC BY 4.0,
https://storage.googleapis.com/download.tensorflow.org/data/speech_commands_v0.02.tar.gz):
untar it and point `[ingest] train` at the folder instead.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import pathlib
import shutil
import subprocess
import sys
import time
import wave

import numpy as np
from scipy import signal

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# Other words (Speech Commands' own auxiliary words): they become the `unknown` class.
OTHER_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house",
               "marvin", "nine", "one", "seven", "sheila", "six", "three", "tree", "two",
               "wow", "zero", "learn", "follow", "forward", "visual", "backward")
# espeak-ng's English voices (`espeak-ng --voices=en`) and voice variants (`--voices=variant`).
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
          "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
            "klatt", "klatt2", "klatt3", "croak", "grandma", "grandpa", "steph")
RATE = 16000
CLIP = RATE  # one second
OTHERS_PER_SPEAKER = 8  # the unknown class needs variety more than volume
SHARES = {"validation": 0.1, "test": 0.15}  # of the speakers


def speakers() -> list[str]:
    return [f"{voice}+{variant}" for voice in VOICES for variant in VARIANTS]


def speaker_id(speaker: str) -> str:
    """File-name form: no underscore (Speech Commands splits the name at '_nohash_')."""
    return speaker.replace("+", "-")


def split_of(speaker: str, seed: int) -> str:
    bucket = int.from_bytes(hashlib.sha256(f"{seed}:{speaker}".encode()).digest()[:8],
                            "big") / 2.0**64
    if bucket < SHARES["test"]:
        return "test"
    return "validation" if bucket < SHARES["test"] + SHARES["validation"] else "train"


def speak(word: str, speaker: str, speed: int, pitch: int, amplitude: int) -> np.ndarray:
    """espeak-ng's rendition of `word` as float samples at RATE."""
    wav = subprocess.run(["espeak-ng", "-v", speaker, "-s", str(speed), "-p", str(pitch),
                          "-a", str(amplitude), "--stdout", word],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
    samples = np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0
    divisor = np.gcd(rate, RATE)
    return signal.resample_poly(samples, RATE // divisor, rate // divisor).astype(np.float32)


def trim(samples: np.ndarray, threshold: float = 0.01) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return samples[loud[0]:loud[-1] + 1] if loud.size else samples[:0]


def noise(kind: str, length: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise: white, pink, brown, mains hum, or a running machine (filtered noise
    modulated at a slow rate)."""
    white = rng.standard_normal(length)
    if kind == "white":
        value = white
    elif kind in ("pink", "brown"):
        spectrum = np.fft.rfft(white)
        frequencies = np.maximum(np.fft.rfftfreq(length), 1.0 / length)
        spectrum /= np.sqrt(frequencies) if kind == "pink" else frequencies
        value = np.fft.irfft(spectrum, length)
    elif kind == "hum":
        time_axis = np.arange(length) / RATE
        value = sum(np.sin(2 * np.pi * 50 * harmonic * time_axis) / harmonic
                    for harmonic in range(1, 6)) + 0.1 * white
    else:  # "machine"
        low, high = signal.butter(4, [200, 1200], btype="band", fs=RATE)
        time_axis = np.arange(length) / RATE
        value = signal.lfilter(low, high, white) * (1.2 + np.sin(2 * np.pi * 0.7 * time_axis))
    value = value - value.mean()
    return (value / (np.sqrt(np.mean(value ** 2)) + 1e-12)).astype(np.float32)


NOISES = ("white", "pink", "brown", "hum", "machine")


def write_wav(path: pathlib.Path, samples: np.ndarray) -> None:
    pcm = np.clip(np.round(samples * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(pcm.tobytes())


def render(job: tuple) -> str:
    """One clip: the word spoken by the speaker, at a random place over random noise."""
    out_dir, word, speaker, index, seed = job
    rng = np.random.default_rng(
        int.from_bytes(hashlib.sha256(f"{seed}:{word}:{speaker}:{index}".encode()).digest()[:8],
                       "big"))
    speech = trim(speak(word, speaker, speed=int(rng.integers(120, 200)),
                        pitch=int(rng.integers(25, 75)), amplitude=int(rng.integers(60, 180))))
    speech = speech[:CLIP]
    clip = np.zeros(CLIP, dtype=np.float32)
    start = int(rng.integers(0, CLIP - len(speech) + 1))
    clip[start:start + len(speech)] = speech
    level = 10 ** rng.uniform(-3.3, -1.7)  # noise RMS from -66 to -34 dBFS
    clip += level * noise(NOISES[int(rng.integers(len(NOISES)))], CLIP, rng)
    name = f"{speaker_id(speaker)}_nohash_{index}.wav"
    write_wav(pathlib.Path(out_dir) / word / name, clip)
    return f"{word}/{name}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--renditions", type=int, default=3,
                        help="clips per keyword and speaker (other words: %d per speaker, "
                        "once)" % OTHERS_PER_SPEAKER)
    parser.add_argument("--speakers", type=int, default=0,
                        help="use only the first N speakers (0: all %d)" % len(speakers()))
    parser.add_argument("--other-words", type=int, default=len(OTHER_WORDS))
    parser.add_argument("--noise-seconds", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed: apt-get install espeak-ng")
    chosen = speakers()[:args.speakers or None]
    out_dir = args.out_dir
    if out_dir.exists():
        shutil.rmtree(out_dir)
    words = KEYWORDS + OTHER_WORDS[:args.other_words]
    for word in (*words, "_background_noise_"):
        (out_dir / word).mkdir(parents=True)
    jobs = [(str(out_dir), word, speaker, index, args.seed) for word in KEYWORDS
            for speaker in chosen for index in range(args.renditions)]
    others = words[len(KEYWORDS):]
    for number, speaker in enumerate(chosen):  # each speaker says a few other words once
        jobs += [(str(out_dir), others[(number * OTHERS_PER_SPEAKER + k) % len(others)],
                  speaker, 0, args.seed) for k in range(min(OTHERS_PER_SPEAKER, len(others)))]
    started = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        written = pool.map(render, jobs, chunksize=16)
    rng = np.random.default_rng(args.seed)
    for kind in NOISES:
        write_wav(out_dir / "_background_noise_" / f"{kind}_noise.wav",
                  0.1 * noise(kind, args.noise_seconds * RATE, rng))
    lists = {"validation": [], "test": []}
    for path in written:
        split = split_of(path.split("/")[1].split("_nohash_")[0], args.seed)
        if split in lists:
            lists[split].append(path)
    (out_dir / "validation_list.txt").write_text("".join(f"{p}\n" for p in lists["validation"]))
    (out_dir / "testing_list.txt").write_text("".join(f"{p}\n" for p in lists["test"]))
    print(f"{len(written)} clips of {len(words)} words by {len(chosen)} speakers "
          f"({len(lists['validation'])} validation, {len(lists['test'])} test) and "
          f"{len(NOISES)} noise files in {out_dir}, {time.perf_counter() - started:.1f} s "
          f"with {args.workers} worker(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
