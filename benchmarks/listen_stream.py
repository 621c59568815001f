"""`edgepipe listen` on a 10-minute recording: keywords found, missed and falsely accepted.

    .venv/bin/python benchmarks/listen_stream.py [configs/speech_keywords_dscnn.toml]
        [--minutes 10] [--out stream.wav]

Runs the pipeline (cached stages are reused), writes a WAV recording built from the test split
as the evaluate stage builds its stream (components/evaluate/streaming.py: test keywords in a
seeded order between 1-2 s of test background noise, other words now and then), runs the
`edgepipe listen` command on it as a user would (the pushed model.tflite on LiteRT), reads the
detections it prints and scores them against where the keywords are
(edgepipe.contracts.keyword_stream.match). Prints misses, wrong words, false accepts per hour
and the seconds listen took per second of audio.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "configs" / "speech_keywords_dscnn.toml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", nargs="?", type=pathlib.Path, default=CONFIG)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", type=pathlib.Path, default=None)
    arguments = parser.parse_args(argv)

    from edgepipe import api
    from edgepipe.components.evaluate import streaming
    from edgepipe.components.shared import examples_io
    from edgepipe.contracts import keyword_stream, wav

    result = api.run(arguments.config)
    if result.status != "succeeded":
        raise SystemExit(f"{arguments.config}: the pipeline ended {result.status}.")
    examples = result.artifacts["ingest"]["examples"]
    rate = examples_io.sample_rate(examples)
    names = examples_io.class_names(examples)
    test = examples_io.load_numpy(examples, "test")
    keywords = [name for name in names if name not in ("unknown", "silence")]
    samples, truth = streaming.build(test, names, keywords, rate, 60.0 * arguments.minutes)
    out = arguments.out or ROOT / "artifacts" / "listen_stream.wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(wav.encode(samples, rate))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "edgepipe", "listen", str(arguments.config),
                           str(out)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    detections = []
    for line in done.stdout.splitlines():
        clock, label, score = line.split()
        minutes, secs = clock.split(":")
        detections.append({"time": 60 * int(minutes) + float(secs), "label": label,
                           "score": float(score)})
    config = api.load_config(arguments.config).stages["evaluate"]
    settings = keyword_stream.Settings(
        hop_ms=config.stream_hop_ms, average_ms=config.stream_average_ms,
        threshold=config.stream_threshold, suppression_ms=config.stream_suppression_ms,
        tolerance_ms=config.stream_tolerance_ms)
    found = keyword_stream.match(detections, truth, settings, len(samples) / rate)
    print(done.stderr.strip().splitlines()[0])
    print(done.stdout.strip().splitlines()[:5], "...")
    print(f"\n{out}: {found['stream_seconds'] / 60:.1f} min, {found['keywords_in_stream']} "
          f"keywords; listen printed {len(detections)} detections in {seconds:.1f} s "
          f"({seconds / found['stream_seconds']:.3f} s per second of audio, process start "
          "included)")
    print(f"detected {found['detected']}, wrong word {found['wrong_word']}, missed "
          f"{found['misses']} (miss rate {found['miss_rate']:.1%}), false accepts "
          f"{found['false_accepts']} = {found['false_accepts_per_hour']:.1f} per hour "
          f"(threshold {settings.threshold})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
