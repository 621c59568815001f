"""The quantize stage's generation piece: the generator's one-step signature converted to
TFLite per variant, each variant scored on LiteRT by bits per character, and the deploy choice.

TFLite converts stateless LSTMs only, so what converts is `step(token, h, c) -> (logits, h, c)`
(models/char_lstm.step_function: fixed shapes, the state explicit, builtin ops). Variants:
float32, dynamic_range, float16, and int8 (full integer, calibrated on the states the Keras
step passes through on the train text; inputs and outputs stay float32 so an app feeds the
same state whatever the variant). A variant that does not convert, or needs non-builtin ops,
is recorded as failed with the reason; the others are kept.

Every variant runs over the test split through the signature, as an app would: document by
document from a zero state, [START] + the text, one invoke per character, scoring each next
character (and the end) in bits. `[quantize] max_scored_characters` caps the characters
scored (whole documents, in file order); Keras scores exactly the same ones, so the variant's
difference to Keras is measured on equal ground. The deploy policy keeps the smallest variant
whose bits per character are at most `max_bits_per_char_increase` (absolute bits) above
Keras's, or says why none is.
"""

from __future__ import annotations

import gzip
import json
import pathlib
import time
from typing import Any

import numpy as np

from edgepipe.components.quantize import deploy_policy
from edgepipe.components.quantize.measure import builtin_only, cpu_description, op_names
from edgepipe.components.shared import examples_io
from edgepipe.components.shared.character_scoring import document_ids, score_keras
from edgepipe.contracts import artifacts, characters
from edgepipe.contracts.litert_step import StepRunner

VARIANTS = ("float32", "dynamic_range", "float16", "int8")
SIGNATURE = "step"


def scored_documents(texts: list[str], index: dict, cap: int) -> list[np.ndarray]:
    """The first test documents (as [START] + ids + [START]) until `cap` predictions."""
    chosen, total = [], 0
    for ids in document_ids(texts, index):
        if total >= cap:
            break
        chosen.append(ids)
        total += len(ids) - 1
    return chosen


def representative_states(step, documents: list[np.ndarray], count: int, state_shape):
    """(token, h, c) inputs the Keras step meets on train text: int8 calibration data."""
    import tensorflow as tf

    samples = []
    for ids in documents:
        h = np.zeros(state_shape, np.float32)
        c = np.zeros(state_shape, np.float32)
        for token in ids[:-1]:
            samples.append((np.asarray([token], np.int32), h, c))
            out = step(tf.constant([token], tf.int32), tf.constant(h), tf.constant(c))
            h, c = out["h"].numpy(), out["c"].numpy()
            if len(samples) >= count:
                return samples
    return samples


def convert(tf, function, model, variant: str, samples) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        converter.representative_dataset = lambda: (
            {"token": token, "h": h, "c": c} for token, h, c in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def score_litert(runner: StepRunner, documents: list[np.ndarray]):
    """(bits per prediction, predicted ids, seconds per invoke) through the step signature."""
    bits, predicted, seconds = [], [], []
    for ids in documents:
        h = np.zeros(runner.state_shape, np.float32)
        c = np.zeros(runner.state_shape, np.float32)
        for position in range(len(ids) - 1):
            started = time.perf_counter()
            logits, h, c = runner(int(ids[position]), h, c)
            seconds.append(time.perf_counter() - started)
            bits.append(characters.bits(logits[None], ids[position + 1:position + 2])[0])
            predicted.append(int(np.argmax(logits)))
    return np.asarray(bits), np.asarray(predicted), np.asarray(seconds)


def variant_record(content: bytes, variant: str, documents, keras_bits: np.ndarray,
                   keras_predicted: np.ndarray, output_dir: pathlib.Path) -> dict[str, Any]:
    ops = op_names(content)
    runner = StepRunner(model_content=content, name=f"variant {variant!r}")
    bits, predicted, seconds = score_litert(runner, documents)
    path = output_dir / artifacts.variant_file(variant)
    path.write_bytes(content)
    milliseconds = seconds * 1000.0
    p50 = round(float(np.percentile(milliseconds, 50)), 5)
    p99 = round(float(np.percentile(milliseconds, 99)), 5)
    return {
        "name": variant, "path": path.name, "metadata": f"{variant}.json", "signature": SIGNATURE,
        "size_bytes": len(content),
        "gzip_size_bytes": len(gzip.compress(content, compresslevel=9, mtime=0)),
        "bits_per_char": float(bits.mean()),
        "bits_per_char_difference": float(bits.mean() - keras_bits.mean()),
        "agreement": float(np.mean(predicted == keras_predicted)),
        "scored_characters": int(len(bits)),
        # one step per character: the latency of generating one character, batch 1
        "latency_ms_p50": p50, "latency_ms_p99": p99,
        "latency_ms_p50_all_cores": p50, "latency_ms_p99_all_cores": p99,
        "ops": ops, "builtin_only": builtin_only(ops), "cpu": cpu_description()}


def choose(records: list[dict[str, Any]], keras_bits: float, max_increase: float,
           policy: str) -> dict[str, Any]:
    """deployable.json: the policy's pick among the builtin-only variants whose bits per
    character are at most `max_increase` above Keras's; PolicyNotSatisfied names them all."""
    measured = [record for record in records if "skipped" not in record]
    candidates = [record for record in measured if record["builtin_only"] and
                  record["bits_per_char"] - keras_bits <= max_increase + deploy_policy.TOLERANCE]
    table = "; ".join(f"{record['name']} {record['bits_per_char']:.4f} "
                      f"({record['bits_per_char_difference']:+.4f})" for record in measured)
    failed = "; ".join(f"{record['name']}: {record['skipped']}" for record in records
                       if "skipped" in record)
    if not candidates:
        raise deploy_policy.PolicyNotSatisfied(
            f"[quantize] deploy policy {policy!r}: no variant with builtin ops only is within "
            f"{max_increase} bits per character of the Keras model ({keras_bits:.4f}). "
            f"Measured: {table or 'none'}. Failed: {failed or 'none'}. Raise "
            "max_bits_per_char_increase, add the float32 variant, or improve the model.")
    chosen, why = deploy_policy._pick(candidates, policy, "one_thread")
    return {"variant": chosen["name"], "path": chosen["path"], "policy": {
        "name": policy, "metric": "bits_per_char", "max_bits_per_char_increase": max_increase,
        "keras_bits_per_char": keras_bits},
        "reason": (f"{chosen['name']}: {why} of the {len(candidates)} variant(s) within "
                   f"{max_increase} bits per character of Keras ({keras_bits:.4f}; its "
                   f"{chosen['bits_per_char']:.4f}, {chosen['bits_per_char_difference']:+.4f}); "
                   f"measured: {table}" + (f"; failed: {failed}" if failed else ""))}


def build_variant(tf, function, model, variant: str, samples, documents, keras_scores,
                  output_dir: pathlib.Path, sidecar: dict, log) -> dict[str, Any]:
    """One variant's variants.json record: converted, written with its sidecar and scored;
    or {"name", "skipped": why} when it is not built or does not convert."""
    if variant not in VARIANTS:
        return {"name": variant, "skipped": f"not built for generation (a step signature "
                f"converts as {list(VARIANTS)})"}
    started = time.monotonic()
    try:
        content = convert(tf, function, model, variant, samples)
    except Exception as error:  # the converter raises several unrelated types
        reason = f"failed: conversion raised {type(error).__name__}: {str(error)[:300]}"
        log.warning("quantize: %s %s", variant, reason)
        return {"name": variant, "skipped": reason}
    converted = time.monotonic()
    record = variant_record(content, variant, documents, *keras_scores, output_dir)
    record["seconds"] = {"fine_tune": 0.0, "convert": round(converted - started, 2),
                         "measure": round(time.monotonic() - converted, 2)}
    (output_dir / record["metadata"]).write_text(json.dumps(sidecar, indent=1))
    log.info("quantize: %-13s %9d bytes  %.4f bits per character (%+.4f vs Keras), agreement "
             "%.3f, %.3f ms a character, %s", variant, record["size_bytes"],
             record["bits_per_char"], record["bits_per_char_difference"], record["agreement"],
             record["latency_ms_p50"],
             "builtin ops only" if record["builtin_only"] else "NON-BUILTIN OPS")
    return record


def run(inputs, outputs, config, context) -> dict[str, Any]:
    import tensorflow as tf

    from edgepipe.models import char_lstm
    from edgepipe.models.keras import keras

    model_dir = pathlib.Path(inputs["model"].path)
    model_info = artifacts.read_model_info(model_dir)
    vocabulary = characters.read(model_dir / characters.FILE)
    index = characters.index_of(vocabulary["tokens"])
    model = keras.models.load_model(model_dir / artifacts.KERAS_MODEL, compile=False)
    state_shape = tuple(model_info["state_shape"])
    _, texts = examples_io.load_texts(inputs["examples"].path, "test")
    documents = scored_documents(texts, index, config.max_scored_characters)
    if not documents:
        raise ValueError(f"{inputs['examples'].path}: the test split is empty; there is "
                         "nothing to score the variants on.")
    keras_scored = score_keras(char_lstm.with_state(model), documents, state_shape)
    keras_bits = np.concatenate([item["bits"] for item in keras_scored])
    keras_predicted = np.concatenate([item["predicted"] for item in keras_scored])
    step = char_lstm.step_function(tf, model)
    function = step.get_concrete_function()
    _, train_texts = examples_io.load_texts(inputs["examples"].path, "train")
    samples = representative_states(step, document_ids(train_texts[:200], index),
                                    config.representative_examples, state_shape)
    context.log.info("quantize: keras %.4f bits per character on %d test characters; %d "
                     "calibration steps", keras_bits.mean(), len(keras_bits), len(samples))
    output_dir = pathlib.Path(outputs["tflite"])
    sidecar = {"task": "generation", "signature": SIGNATURE, "inputs": ["token", "h", "c"],
               "outputs": ["logits", "h", "c"], "state_shape": list(state_shape),
               "vocabulary": characters.FILE, "units": vocabulary["units"]}
    records = [build_variant(tf, function, model, variant, samples, documents,
                             (keras_bits, keras_predicted), output_dir, sidecar, context.log)
               for variant in config.variants]
    artifacts.write_variants(output_dir, records)
    deployable = choose(records, float(keras_bits.mean()), config.max_bits_per_char_increase,
                        config.deploy_policy)
    artifacts.write_deployable(output_dir, deployable)
    context.log.info("quantize: deployable %s", deployable["reason"])
    return {"variants": [{key: record[key] for key in (
                "name", "size_bytes", "gzip_size_bytes", "bits_per_char",
                "bits_per_char_difference", "agreement", "latency_ms_p50", "seconds")}
                         for record in records if "skipped" not in record],
            "skipped_variants": [record for record in records if "skipped" in record],
            "keras_bits_per_char": float(keras_bits.mean()),
            "scored_characters": int(len(keras_bits)), "cpu": cpu_description(),
            "deployable": deployable}
