"""Every configured TFLite variant of a Keras model: fine-tuned if the variant asks for it,
converted, described, written and measured on the LiteRT interpreter.

`quantize_model` returns the variants.json records (a skipped variant is {"name", "skipped":
reason}) and the Keras model's accuracy on the same test inputs, which every variant's
accuracy and agreement are compared with.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import pathlib
import time
from typing import Any, Callable

import numpy as np

from edgepipe.components.quantize.convert import check_recurrent, convert
from edgepipe.contracts import artifacts

FINE_TUNED = ("qat_int8", "pruned_int8")


def quantize_model(
    model, representative: np.ndarray, test_inputs: np.ndarray, test_labels: np.ndarray,
    config, output_dir: pathlib.Path, log: logging.Logger,
    fine_tune_data: Callable[[], Any] | None = None, model_info: dict | None = None,
    model_key: str = "",
) -> tuple[list[dict[str, Any]], float]:
    """Convert, write and measure every configured variant; writes variants.json."""
    if test_inputs.dtype != np.int32:  # int32 token ids stay ids
        test_inputs = test_inputs.astype(np.float32, copy=False)
    keras_predictions = np.argmax(model.predict(test_inputs, batch_size=256, verbose=0), axis=1)
    keras_accuracy = float(np.mean(keras_predictions == test_labels))
    log.info("quantize: keras accuracy %.4f on %d test examples", keras_accuracy, len(test_labels))
    model_info = model_info or {"class_names": [str(i) for i in range(model.output_shape[-1])]}
    raw_range = (float(representative.min()), float(representative.max()))
    data = _Once(fine_tune_data)
    records = []
    for variant in config.variants:
        seconds = {"fine_tune": 0.0, "convert": 0.0, "measure": 0.0}
        source, extra = model, {}
        if variant in FINE_TUNED:
            with _timed(seconds, "fine_tune"):
                tuned = fine_tune(model, variant, config, data, log)
            if isinstance(tuned, str):
                log.warning("quantize: %s skipped: %s", variant, tuned)
                records.append({"name": variant, "skipped": tuned})  # decided before training
                continue
            source, extra = tuned
        with _timed(seconds, "convert"):
            content = _write(source, variant, representative, config, model_info, raw_range,
                             output_dir, model_key)
            check_recurrent(model, variant, (ops := _ops(content)))
        with _timed(seconds, "measure"):
            record = measure_variant(content, variant, ops, test_inputs, test_labels,
                                     keras_predictions, output_dir, log,
                                     getattr(config, "latency_examples", None))
            record["device"] = _device_checks(content, output_dir / record["path"], config, log)
        log.info("quantize: %-13s seconds: fine-tuning %.1f, conversion %.1f, measurement %.1f",
                 variant, seconds["fine_tune"], seconds["convert"], seconds["measure"])
        records.append({**record, **extra, "seconds": seconds})
    artifacts.write_variants(output_dir, records)
    return records, keras_accuracy


@contextlib.contextmanager
def _timed(seconds: dict[str, float], part: str):
    """Adds the wall seconds of the block to seconds[part] (rounded to 0.01 s)."""
    started = time.monotonic()
    try:
        yield
    finally:
        seconds[part] = round(seconds[part] + time.monotonic() - started, 2)


class _Once:
    """The fine-tuning dataset, built the first time a variant needs it."""

    def __init__(self, make: Callable[[], Any] | None):
        self.make, self.value = make, None

    def __call__(self, variant: str):
        if self.make is None:
            raise ValueError(f"variant {variant!r} fine-tunes on the train split, but no "
                             "training data was given to quantize_model.")
        if self.value is None:
            self.value = self.make()
        return self.value


def fine_tune(model, variant: str, config, data: _Once, log) -> tuple[Any, dict] | str:
    """(fine-tuned model, extra record fields), or the reason the variant is skipped."""
    from edgepipe.components.quantize import qat

    unsupported = qat.unannotatable_layers(model) if variant == "qat_int8" else []
    if unsupported:  # decided before any fine-tuning data is built
        return qat.QAT_UNSUPPORTED.format(layers=", ".join(unsupported))
    try:
        if variant == "qat_int8":
            rate = config.qat_learning_rate or config.fine_tune_learning_rate
            return qat.quantization_aware(model, data(variant), config.qat_epochs, rate, log), {}
        pruned, sparsity = qat.prune(model, data(variant), config.pruning_epochs,
                                     config.fine_tune_learning_rate, config.pruning_sparsity,
                                     log)
        return pruned, {"sparsity": round(sparsity, 4)}
    except qat.QatUnsupported as reason:
        return str(reason)


def _write(source, variant: str, representative, config, model_info: dict, raw_range,
           output_dir: pathlib.Path, model_key: str = "") -> bytes:
    """Convert, embed the JSON description, then the standard TFLite metadata (in this order:
    embedding re-packs the flatbuffer, which would drop the zip of associated files that the
    standard metadata appends), write `<variant>.tflite` and its sidecar JSON."""
    from edgepipe.components.quantize import metadata, metadata_specs

    io_type = "uint8" if variant == "uint8" else config.int8_io
    content = convert(source, variant, representative, io_type)
    description = metadata.describe(content, variant, model_info, raw_range)
    content = metadata.embed(content, description)
    info = metadata_specs.model_info(config, model_info, variant, model_key)
    content = metadata_specs.write(content, info, model_info, description)
    path = output_dir / artifacts.variant_file(variant)
    path.write_bytes(content)
    metadata.write_sidecar(path, description)
    return content


def _device_checks(content: bytes, path: pathlib.Path, config, log) -> dict[str, Any]:
    """What the variant needs on a phone: delegate coverage, MediaPipe, the benchmark tool."""
    from edgepipe.components.quantize import device_checks

    checks = device_checks.check(content, path, benchmark=config.benchmark_tool)
    log.info("quantize: %-13s %s", path.stem, device_checks.summary(checks))
    return checks


def _ops(content: bytes) -> list[str]:
    from edgepipe.components.quantize import measure

    return measure.op_names(content)


def measure_variant(content: bytes, variant: str, ops: list[str], test_inputs, test_labels,
                    keras_predictions, output_dir: pathlib.Path,
                    log: logging.Logger, latency_examples: int | None = None) -> dict[str, Any]:
    """The variants.json record of one written variant: accuracy and agreement over every
    test input (the inputs split among one-thread interpreters on every core), batch-1
    latency with one interpreter thread and with every core over the first
    `latency_examples` test inputs (None: all of them)."""
    from edgepipe.components.quantize import measure

    cores = measure.all_cores()
    timed = test_inputs[:latency_examples] if latency_examples else test_inputs
    try:
        probabilities = measure.predict(content, test_inputs, workers=cores,
                                        name=f"variant {variant!r}")
        one = measure.run(content, timed, num_threads=1, name=f"variant {variant!r}")
        every = one if cores == 1 else measure.run(content, timed, num_threads=cores,
                                                   name=f"variant {variant!r}")
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(f"TFLite variant {variant!r} converted but failed on the LiteRT "
                           f"interpreter: {error}") from error
    predictions = np.argmax(probabilities, axis=1)
    path = output_dir / artifacts.variant_file(variant)
    record = {
        "name": variant, "path": path.name, "metadata": f"{variant}.json",
        "size_bytes": len(content),
        "gzip_size_bytes": len(gzip.compress(content, compresslevel=9, mtime=0)),
        "accuracy": float(np.mean(predictions == test_labels)),
        "agreement": float(np.mean(predictions == keras_predictions)),
        **_latencies(one.invoke_seconds, ""), **_latencies(every.invoke_seconds, "_all_cores"),
        "threads_all_cores": cores, "peak_memory_bytes": measure.peak_memory_bytes(path),
        "ops": ops, "builtin_only": measure.builtin_only(ops),
        "input_dtype": one.input_dtype, "output_dtype": one.output_dtype,
        "num_examples": int(len(test_labels)), "latency_examples": int(len(timed)), "cpu": measure.cpu_description(),
    }
    log.info(
        "quantize: %-13s %9d bytes (gzip %9d)  accuracy %.4f  agreement %.4f  p50 %.3f ms "
        "(1 thread) %.3f ms (%d threads)  %s", variant, record["size_bytes"],
        record["gzip_size_bytes"], record["accuracy"], record["agreement"],
        record["latency_ms_p50"], record["latency_ms_p50_all_cores"], cores,
        "builtin ops only" if record["builtin_only"] else "NEEDS NON-BUILTIN OPS")
    return record


def _latencies(seconds: np.ndarray, suffix: str) -> dict[str, float]:
    milliseconds = seconds * 1000.0
    return {f"latency_ms_p50{suffix}": round(float(np.percentile(milliseconds, 50)), 5),
            f"latency_ms_p99{suffix}": round(float(np.percentile(milliseconds, 99)), 5)}
