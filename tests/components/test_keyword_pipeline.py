"""The tiny keyword pipeline to its end: evaluate with streaming figures, the report with
spectrograms and players, push, `edgepipe listen` on a recording, and the model server taking
PCM as JSON or as a WAV body (tests/audio_fixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edgepipe.contracts import artifacts, wav
from tests.audio_fixtures import KEYWORDS, RATE, say
from tests.serving.conftest import call, serve


def test_evaluate_reports_misses_and_false_accepts_on_a_stream(audio_evaluation):
    properties, evaluation = audio_evaluation
    streaming = artifacts.read_streaming(evaluation.path)
    assert streaming["stream_seconds"] >= 30 and streaming["keywords_in_stream"] >= 10
    assert streaming["detected"] + streaming["wrong_word"] + streaming["misses"] == \
        streaming["keywords_in_stream"]
    assert streaming["miss_rate"] < 0.5, streaming  # the model hears most of them
    assert properties["streaming"]["false_accepts_per_hour"] == \
        streaming["false_accepts_per_hour"]


@pytest.mark.slow  # the report stage alone takes ~40 s on the shared 2-core machine
def test_the_report_draws_spectrograms_and_embeds_the_clips(run_stage, audio_examples,
                                                            audio_statistics, audio_model,
                                                            audio_evaluation, audio_tflite):
    inputs = {"examples": audio_examples[1], "statistics": audio_statistics["statistics"],
              "model": audio_model[1], "evaluation": audio_evaluation[1],
              "tflite": audio_tflite[1]}
    _, outputs = run_stage("report", inputs, {})
    page = (outputs["report"].path / artifacts.REPORT_HTML).read_text()
    assert 'id="fig-spectrograms"' in page and 'id="streaming-summary"' in page
    players = page.count('<audio controls preload="none" src="data:audio/wav;base64,')
    assert players >= len(KEYWORDS) + 2  # one clip per class, more for confused pairs
    assert "http://" not in page.split('id="data"')[1].split("</section>")[0]


def test_listen_prints_the_keywords_of_a_recording_with_their_times(audio_registry, tmp_path,
                                                                    capsys):
    from edgepipe import cli

    noise = 0.01 * np.random.default_rng(1).standard_normal(4 * RATE).astype(np.float32)
    recording = np.concatenate([noise[:RATE], say("yes", 3, 0), noise[RATE:3 * RATE],
                                say("no", 5, 1), noise[3 * RATE:]])
    path = tmp_path / "recording.wav"
    path.write_bytes(wav.encode(recording, RATE))
    config = tmp_path / "keywords.toml"
    config.write_text(f"""
[pipeline]
name = "keywords"
root = "{tmp_path / 'root'}"
[ingest]
source = "audio_dir"
train = "{tmp_path}"
[evaluate]
stream_threshold = 0.5
[registry]
path = "{audio_registry}"
""")
    assert cli.main(["listen", str(config), str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    found = [(line.split()[1], float(line.split()[0].split(":")[1])) for line in lines]
    assert [label for label, _ in found] == ["yes", "no"], lines
    assert 1.0 <= found[0][1] <= 2.6 and 4.0 <= found[1][1] <= 5.6
    assert cli.main(["listen", str(config), str(config)]) == 2  # not a WAV: a clear error
    assert "keywords.toml: not a RIFF/WAVE file" in capsys.readouterr().err


def test_the_pushed_model_states_its_sample_rate_and_labels_for_mediapipe(audio_registry):
    from edgepipe.components.tflite_metadata import flatbuffer

    metadata, files = flatbuffer.read((audio_registry / "keywords" / "1" /
                                       "model.tflite").read_bytes())
    audio = metadata.subgraphMetadata[0].inputTensorMetadata[0].content.contentProperties
    assert (audio.sampleRate, audio.channels) == (RATE, 1)
    labels = metadata.subgraphMetadata[0].outputTensorMetadata[0].associatedFiles[0]
    assert labels.type == 2  # TENSOR_AXIS_LABELS
    assert files[flatbuffer.text(labels.name)].decode().split() == KEYWORDS + ["unknown",
                                                                              "silence"]


def test_the_server_takes_samples_as_json_or_a_wav_body(audio_registry):
    clip = say("up", 2, 1)
    with serve(audio_registry) as (base, _):
        status, json_answer = call(base, "POST", "/v1/models/keywords:predict",
                                   {"instances": [clip.tolist()]})
        assert status == 200, json_answer
        status, wav_answer = call(base, "POST", "/v1/models/keywords:predict",
                                  wav.encode(clip, RATE), {"Content-Type": "audio/wav"})
        assert status == 200, wav_answer
        assert wav_answer["classes"] == json_answer["classes"] == ["up"]
        np.testing.assert_allclose(wav_answer["predictions"], json_answer["predictions"],
                                   atol=0.02)  # the WAV body is 16-bit: a little rounding
        status, error = call(base, "POST", "/v1/models/keywords:predict",
                             b"RIFF\x10\x00\x00\x00WAVEfmt ", {"Content-Type": "audio/wav"})
        assert status == 400 and "WAV" in str(error)
