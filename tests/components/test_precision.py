"""[train] precision = "auto": what it picks from the CPU flags (faked /proc/cpuinfo files), the
GPUs and a TPU, what the train stage prints and records, and the warning an explicit bfloat16
gets at config load on a CPU that would emulate it."""

from __future__ import annotations

import json
import logging

import pytest

from edgepipe.components.train import precision
from edgepipe.components.train import stage as train

EPYC_FLAGS = "fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni"


def cpuinfo(tmp_path, flags: str, name: str = "AMD EPYC 7B13", key: str = "flags"):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {name}\n{key}\t\t: {flags}\n\n"
                    f"processor\t: 1\nmodel name\t: {name}\n{key}\t\t: {flags}\n")
    return path


@pytest.fixture
def fake_cpu(tmp_path, monkeypatch):
    """Point precision at a faked /proc/cpuinfo; oneDNN settings left at their defaults."""
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")

    def fake(flags: str, machine: str = "x86_64", key: str = "flags"):
        monkeypatch.setattr(precision, "CPUINFO", cpuinfo(tmp_path, flags, key=key))
        monkeypatch.setattr(precision.platform, "machine", lambda: machine)
        return precision.read_cpu()

    return fake


@pytest.mark.parametrize("flags, expected, why", [
    (EPYC_FLAGS + " avx512_bf16", "mixed_bfloat16", "natively (avx512_bf16)"),
    (EPYC_FLAGS + " amx_bf16 amx_tile", "mixed_bfloat16", "natively (amx_bf16)"),
    (EPYC_FLAGS, "float32", "no native bfloat16 (no AVX512_BF16 or AMX flag)"),
    ("fpu sse sse2 avx avx2 fma", "float32", "no native bfloat16 (no AVX512_BF16 or AMX flag)"),
])
def test_auto_follows_the_x86_flags(fake_cpu, flags, expected, why):
    choice = precision.choose("auto", fake_cpu(flags), [])
    assert choice.precision == expected
    assert "AMD EPYC 7B13" in choice.reason and why in choice.reason
    if expected == "float32":  # says what bfloat16 would have cost
        assert precision.MEASURED_SLOWDOWN in choice.reason


def test_auto_on_arm_needs_the_bf16_feature(fake_cpu):
    with_bf16 = fake_cpu("fp asimd bf16 i8mm sve", "aarch64", key="Features")
    assert precision.choose("auto", with_bf16, []).precision == "mixed_bfloat16"
    without = fake_cpu("fp asimd evtstrm crc32", "aarch64", key="Features")
    choice = precision.choose("auto", without, [])
    assert choice.precision == "float32" and "no BF16 in its features" in choice.reason


def test_onednn_switched_off_counts_as_no_native_bfloat16(fake_cpu, monkeypatch):
    cpu = fake_cpu(EPYC_FLAGS + " avx512_bf16")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    choice = precision.choose("auto", cpu, [])
    assert choice.precision == "float32"
    assert "TF_ENABLE_ONEDNN_OPTS=0 leaves its AVX512_BF16/AMX unused" in choice.reason


def test_gpus_and_tpus(fake_cpu):
    cpu = fake_cpu(EPYC_FLAGS)
    assert precision.choose("auto", cpu, [(8, 0)]).precision == "mixed_float16"
    old = precision.choose("auto", cpu, [(6, 1)])
    assert old.precision == "float32" and "no Tensor Cores" in old.reason
    assert precision.choose("auto", cpu, [], tpu=True).precision == "mixed_bfloat16"


def test_explicit_bfloat16_is_kept_but_warned_about_at_config_load(fake_cpu, caplog):
    fake_cpu(EPYC_FLAGS)
    with caplog.at_level(logging.WARNING, logger="edgepipe.train"):
        config = train.Config.model_validate({"precision": "mixed_bfloat16"})
    assert config.precision == "mixed_bfloat16"
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "no native bfloat16" in warning and precision.MEASURED_SLOWDOWN in warning
    assert 'set precision = "auto" or "float32"' in warning
    caplog.clear()
    fake_cpu(EPYC_FLAGS + " avx512_bf16")
    with caplog.at_level(logging.WARNING, logger="edgepipe.train"):
        train.Config.model_validate({"precision": "mixed_bfloat16"})
        assert train.Config().precision == "auto"  # the default
    assert not caplog.records


@pytest.mark.parametrize("flags, expected", [(EPYC_FLAGS, "float32"),
                                             (EPYC_FLAGS + " avx512_bf16", "mixed_bfloat16")])
def test_train_stage_prints_and_records_what_auto_picked(
        fake_cpu, flags, expected, caplog, run_stage, examples_artifact, statistics_artifacts):
    fake_cpu(flags)
    inputs = {"examples": examples_artifact, **statistics_artifacts}
    config = {"epochs": 1, "batch_size": 32, "model_options": {"filters": [8]}}
    with caplog.at_level(logging.INFO, logger="edgepipe"):
        properties, artifacts = run_stage("train", inputs, config)
    assert properties["precision"]["requested"] == "auto"
    assert properties["precision"]["precision"] == expected
    printed = [record.getMessage() for record in caplog.records
               if record.getMessage().startswith("precision ")]
    assert printed == [f"precision {expected} (auto): {properties['precision']['reason']}"]
    info = json.loads((artifacts["model"].path / "model.json").read_text())
    assert info["precision"] == expected
    assert info["precision_choice"] == properties["precision"]


def test_auto_keeps_recurrent_models_in_float32_even_with_native_bfloat16(fake_cpu):
    from edgepipe import models
    from edgepipe.models.keras import keras

    lstm = models.build("lstm", input_shape=[29, 12], num_classes=9, mean=[0.0] * 12,
                        variance=[1.0] * 12)
    cnn = models.build("cnn", input_shape=[28, 28, 1], num_classes=10, mean=0.0, variance=1.0)
    assert precision.is_recurrent(keras, lstm) and not precision.is_recurrent(keras, cnn)
    cpu = fake_cpu(EPYC_FLAGS + " avx512_bf16")
    choice = precision.choose("auto", cpu, [], recurrent=True)
    assert choice.precision == "float32"
    assert "natively (avx512_bf16), but the model is recurrent" in choice.reason
