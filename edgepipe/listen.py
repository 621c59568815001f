"""`edgepipe listen CONFIG FILE.wav`: the keywords in a recording, with their times.

The newest model the config's pipeline pushed to its [registry] runs on the LiteRT interpreter
as a device runs it (model.tflite, float samples in), on clip-long windows sliding over the
recording; the scores are smoothed and thresholded the way Speech Commands' RecognizeCommands
does (edgepipe.contracts.keyword_stream), with the [evaluate] stream_* settings of the config,
the same ones the evaluate stage's streaming figures use.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from edgepipe.contracts import artifacts, keyword_stream, litert, registry, wav


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="the pipeline config whose pushed keyword model to use")
    parser.add_argument("wav", help="a WAV recording (any rate, any channels: converted)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="averaged score a keyword needs (default: [evaluate] "
                             "stream_threshold)")
    parser.add_argument("--version", type=int, default=None,
                        help="registry version (default: the newest)")


def listen(config, path: str, threshold: float | None = None,
           version: int | None = None) -> tuple[list[dict], dict]:
    """(detections, what was listened with) of one recording."""
    from ai_edge_litert.interpreter import Interpreter

    folder, version = registry.pushed_version(config, version)
    info = artifacts.read_model_info(folder)
    if info.get("input_feature") != "audio":
        raise ValueError(f"{folder}: the model takes {info.get('input_feature')!r} inputs, "
                         "not audio; listen needs a keyword model (an audio_dir pipeline).")
    rate, length = int(info["sample_rate"]), int(info["input_shape"][0])
    try:
        samples, source_rate = wav.decode(pathlib.Path(path).read_bytes())
    except wav.WavError as error:
        raise ValueError(f"{path}: {error}") from None
    samples = wav.resample(samples, source_rate, rate)
    evaluate = config.stages["evaluate"]
    settings = keyword_stream.Settings(
        hop_ms=evaluate.stream_hop_ms, average_ms=evaluate.stream_average_ms,
        threshold=threshold if threshold is not None else evaluate.stream_threshold,
        suppression_ms=evaluate.stream_suppression_ms, tolerance_ms=evaluate.stream_tolerance_ms)
    interpreter = Interpreter(model_path=str(folder / registry.TFLITE_MODEL))
    interpreter.allocate_tensors()
    scores, ends = keyword_stream.scan(
        samples, length, max(1, int(rate * settings.hop_ms / 1000)),
        lambda windows: litert.invoke_each(interpreter, windows, str(folder)))
    names = list(info["class_names"])
    keywords = [name for name in names if name not in ("unknown", "silence")]
    detections = keyword_stream.recognize(scores, ends, rate, names, keywords, settings)
    return detections, {"version": version, "seconds": len(samples) / rate,
                        "threshold": settings.threshold, "windows": len(scores)}


def main(args: argparse.Namespace, config) -> int:
    detections, used = listen(config, args.wav, args.threshold, args.version)
    print(f"{args.wav}: {used['seconds']:.1f} s, {used['windows']} windows, model "
          f"{config.registry.model_name} version {used['version']}, threshold "
          f"{used['threshold']:g}", file=sys.stderr)
    for detection in detections:
        minutes, seconds = divmod(detection["time"], 60.0)
        print(f"{int(minutes):02d}:{seconds:06.3f}  {detection['label']:<10} "
              f"{detection['score']:.2f}")
    print(f"{len(detections)} keyword(s) detected", file=sys.stderr)
    return 0
