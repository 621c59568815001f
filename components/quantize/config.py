"""The [quantize] config: which TFLite variants to build, how to measure them, how the
deploy policy picks one, and the metadata they carry."""

from __future__ import annotations

from typing import Literal

import pydantic

from edgepipe.contracts import tasks
from edgepipe.pipeline.stage import StageConfig

Variant = Literal["float32", "dynamic_range", "float16", "int8", "uint8", "int16x8",
                  "qat_int8", "pruned_int8"]
ALL_VARIANTS: tuple[Variant, ...] = ("float32", "dynamic_range", "float16", "int8", "uint8",
                                     "int16x8", "qat_int8", "pruned_int8")
DEFAULT_VARIANTS = ALL_VARIANTS[:-1]  # pruning only when asked for


class Config(StageConfig):
    variants: tuple[Variant, ...] = pydantic.Field(
        default=DEFAULT_VARIANTS,
        description="TFLite variants to build: float32 (no optimisation), dynamic_range "
        "(int8 weights, float activations), float16 (float16 weights), int8 (full integer, "
        "calibrated on training examples, input and output of type int8_io), uint8 (the same "
        "full-integer model with uint8 input and output, what MediaPipe Tasks and the TFLite "
        "Task Library take; a text model's token ids stay int32), int16x8 (16-bit activations, 8-bit weights, float "
        "input/output), qat_int8 (quantization-aware fine-tuning, then full integer; skipped "
        "for models tfmot cannot annotate, such as LSTMs), pruned_int8 (magnitude pruning "
        "while fine-tuning, then full integer).",
    )
    int8_io: Literal["int8", "uint8", "float32"] = pydantic.Field(
        default="int8", description="Input and output type of the full-integer variants "
        "int8, qat_int8 and pruned_int8: int8, or uint8 for devices that want unsigned data "
        "(the uint8 variant is always uint8), or float32: raw float input, the model's input "
        "normalisation kept in float and every layer after it in int8 (for raw features of "
        "different scales, such as a table's columns, which one int8 input scale cannot "
        "hold). The int32 token-id input of a text model stays int32.")
    benchmark_tool: bool = pydantic.Field(
        default=True, description="Also run LiteRT's benchmark tool (litert-benchmark, the "
        "CompiledModel benchmark shipped in ai-edge-litert) on each variant, one thread, and "
        "record its latency beside the interpreter's; it cannot load fused-LSTM or embedding "
        "models, which are recorded with its error. About a second per variant.")
    metadata_name: str = pydantic.Field(
        default="", description="Model name in the standard TFLite metadata of every "
        "variant; empty: '<model> <feature> classifier' (e.g. 'cnn image classifier').")
    metadata_description: str = pydantic.Field(
        default="", description="Model description in the TFLite metadata; empty: the "
        "builder, the classes and the variant.")
    metadata_version: str = pydantic.Field(
        default="", description="Model version in the TFLite metadata; empty: 'model ' and "
        "the first 12 digits of the Model artifact's key (metadata.json of a registry version "
        "records the same key as model_key).")
    metadata_author: str = pydantic.Field(
        default="", description="Author in the TFLite metadata; empty: not written.")
    metadata_license: str = pydantic.Field(
        default="", description="License in the TFLite metadata (e.g. 'Apache-2.0'); empty: "
        "not written.")
    representative_examples: int = pydantic.Field(
        default=200, ge=1, le=100_000,
        description="Training examples, drawn with the pipeline seed, that calibrate the int8 "
        "and int16x8 activation ranges.")
    max_test_examples: int | None = pydantic.Field(
        default=None, ge=1, le=100_000_000,
        description="Measure on the first N test examples; None measures the whole test split.")
    latency_examples: int | None = pydantic.Field(
        default=1000, ge=1, le=100_000_000,
        description="Time batch-1 latency (one thread and all cores) on the first N test "
        "examples; accuracy and agreement still use every test example (run on all cores "
        "at once). None times every test example (int16x8 runs LiteRT's reference kernels, "
        "about 30 ms an example on x86: minutes on a 10,000-example split).")
    qat_epochs: float = pydantic.Field(
        default=1, gt=0, le=10_000, description="Epochs of quantization-aware fine-tuning on "
        "the train "
        "split; a fraction fine-tunes on that share of an epoch's batches (0.25: a quarter).")
    qat_learning_rate: float | None = pydantic.Field(
        default=None, gt=0, description="Adam learning rate QAT starts from (it decays to 0 "
        "over qat_epochs, cosine); None: fine_tune_learning_rate.")
    pruning_epochs: float = pydantic.Field(
        default=2, gt=0, le=10_000, description="Epochs of fine-tuning while pruning "
        "(pruned_int8); a "
        "fraction fine-tunes on that share of an epoch's batches.")
    pruning_sparsity: float = pydantic.Field(
        default=0.5, gt=0.0, lt=1.0,
        description="Fraction of each prunable layer's weights set to zero (pruned_int8).")
    fine_tune_learning_rate: float = pydantic.Field(
        default=1e-4, gt=0, description="Adam learning rate of QAT and pruning fine-tuning; "
        "QAT's decays to 0 over its epochs (cosine), pruning's stays constant.")
    fine_tune_batch_size: int = pydantic.Field(
        default=64, ge=1, le=65_536, description="Batch size of QAT and pruning fine-tuning.")
    deploy_policy: Literal["smallest_within", "fastest_within"] = pydantic.Field(
        default="smallest_within",
        description="How to pick the deployable variant among those within "
        "max_accuracy_drop_points of Keras: the smallest file, or the lowest measured p50 "
        "batch-1 latency (see deploy_latency). None qualifying fails the stage.")
    max_accuracy_drop_points: float = pydantic.Field(
        default=1.0, ge=0.0, le=100.0,
        description="Classification: largest accepted accuracy drop, in percentage points "
        "below the Keras model on the same test examples.")
    max_metric_increase: float = pydantic.Field(
        default=0.02, ge=0.0, le=10.0,
        description="Regression: largest accepted increase of the MAE, as a fraction of the "
        "Keras model's MAE on the same test examples (0.02: 2% worse).")
    max_bits_per_char_increase: float = pydantic.Field(
        default=0.05, ge=0.0, le=10.0,
        description="Generation: largest accepted increase of the bits per character over "
        "the Keras model's, in bits (absolute), on the same scored test characters.")
    max_scored_characters: int = pydantic.Field(
        default=20_000, ge=1, le=100_000_000,
        description="Generation: test characters each variant scores through its step "
        "signature (whole documents, in order, until this many): one interpreter call each.")
    task: str = pydantic.Field(
        default=tasks.CLASSIFICATION.name, description="Set from [pipeline] task by the config "
        "loader: what the variants are scored by (edgepipe.contracts.tasks).")
    deploy_target: Literal["any", "mediapipe"] = pydantic.Field(
        default="any", description="Which variants may be deployed: any, or only those that "
        "MediaPipe Tasks' classifiers accept as they are (float32 or uint8 input and output, "
        "an RGB image input; see the mediapipe device check in variants.json).")
    deploy_latency: Literal["one_thread", "all_cores"] = pydantic.Field(
        default="one_thread",
        description="Which measured latency fastest_within compares: one interpreter thread, "
        "or as many threads as this process may use.")

    @pydantic.model_validator(mode="after")
    def _fits_task(self):
        generation = ["max_bits_per_char_increase", "max_scored_characters"]
        if self.task == tasks.GENERATION.name:
            wrong = ["max_metric_increase", "max_accuracy_drop_points"]
        elif tasks.get(self.task).primary.higher_is_better:
            wrong = ["max_metric_increase", *generation]
        else:  # an error metric: MediaPipe's classifiers do not take the model
            wrong = ["max_accuracy_drop_points", *generation] + (
                ["deploy_target"] if self.deploy_target != "any" else [])
        wrong = [key for key in wrong if key in self.model_fields_set]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: not used by task {self.task!r}; see "
                             "docs/quantization.md.")
        return self

    @pydantic.field_validator("variants")
    @classmethod
    def _distinct_and_not_empty(cls, variants: tuple[str, ...]) -> tuple[str, ...]:
        if not variants:
            raise ValueError(f"[quantize] variants is empty; list some of {list(ALL_VARIANTS)}.")
        repeated = sorted({name for name in variants if variants.count(name) > 1})
        if repeated:
            raise ValueError(
                f"[quantize] variants lists {repeated} more than once; list each once."
            )
        return variants
