"""data/make_speech_commands.py: a spoken-keyword set in the Speech Commands layout, spoken by
espeak-ng, whose speakers never cross splits."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from edgepipe.contracts import wav
from tests.conftest import REPO


@pytest.mark.slow  # ~10 s of espeak-ng on a shared machine; `make test-slow` runs it
@pytest.mark.skipif(shutil.which("espeak-ng") is None,
                    reason="espeak-ng is not installed (.ci/run installs it)")
def test_the_generator_writes_the_layout_and_keeps_speakers_apart(tmp_path):
    out = tmp_path / "speech"
    subprocess.run([sys.executable, str(REPO / "data" / "make_speech_commands.py"), str(out),
                    "--speakers", "3", "--renditions", "1", "--other-words", "1",
                    "--noise-seconds", "2", "--workers", "1", "--seed", "3"],
                   check=True, capture_output=True)
    assert sorted(path.name for path in (out / "_background_noise_").iterdir()) == [
        "brown_noise.wav", "hum_noise.wav", "machine_noise.wav", "pink_noise.wav",
        "white_noise.wav"]
    clips = sorted(out.glob("yes/*.wav"))
    assert len(clips) == 3
    samples, rate = wav.decode(clips[0].read_bytes())
    assert rate == 16000 and samples.shape == (16000,) and 0.01 < abs(samples).max() <= 1.0
    listed = {split: (out / name).read_text().split()
              for split, name in (("validation", "validation_list.txt"),
                                  ("test", "testing_list.txt"))}
    speakers = {split: {path.split("/")[1].split("_nohash_")[0] for path in paths}
                for split, paths in listed.items()}
    every = {path.name.split("_nohash_")[0] for path in out.glob("*/*_nohash_*.wav")}
    speakers["train"] = every - speakers["validation"] - speakers["test"]
    assert not speakers["validation"] & speakers["test"]
    assert len(every) == 3
