"""A pushed text generator: `edgepipe generate` and the server's :generate request run the
deployable .tflite through its step signature, with the same rules and limits."""

from __future__ import annotations

import pytest

from edgepipe import cli
from edgepipe.contracts import characters
from tests.generation_fixtures import corpus_config
from tests.serving.conftest import call, serve


@pytest.fixture(scope="module")
def generator_config(tmp_path_factory, run_stage, generation_corpus, generation_examples,
                     generation_model, generation_evaluation, generation_tflite):
    """A config whose [registry] holds the pushed tiny generator as version 1."""
    folder = tmp_path_factory.mktemp("generator")
    registry = folder / "registry"
    inputs = {"examples": generation_examples[1], "model": generation_model[1],
              "evaluation": generation_evaluation[1], "tflite": generation_tflite[1]}
    pushed, _ = run_stage("push", inputs, {"registry": {"path": str(registry),
                                                        "model_name": "writer"}})
    assert pushed["pushed"], pushed["reason"]
    assert (registry / "writer" / "1" / characters.FILE).is_file()
    config = folder / "writer.toml"
    ingest = corpus_config(generation_corpus)
    config.write_text(
        f'[pipeline]\nname = "writer"\ntask = "generation"\nroot = "{folder / "artifacts"}"\n'
        f'[ingest]\nsource = "text_corpus"\ntrain = "{ingest["train"]}"\n'
        f'[train]\nmodel = "char_lstm"\n'
        f'[registry]\npath = "{registry}"\nmodel_name = "writer"\n')
    return config, registry


def generate(config, capsys, *arguments: str) -> tuple[int, str, str]:
    status = cli.main(["generate", str(config), *arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_generate_command_is_seeded_greedy_at_zero_and_refuses_bad_requests(generator_config,
                                                                           capsys):
    config, _ = generator_config
    first = generate(config, capsys, "--prompt", "The ", "--length", "30", "--seed", "3",
                     "--temperature", "1.0")
    again = generate(config, capsys, "--prompt", "The ", "--length", "30", "--seed", "3",
                     "--temperature", "1.0")
    assert first[0] == 0 and first[1] == again[1] and first[1].startswith("The ")
    other = generate(config, capsys, "--prompt", "The ", "--length", "30", "--seed", "4",
                     "--temperature", "1.0")
    assert other[1] != first[1]  # a different seed draws other characters
    greedy = [generate(config, capsys, "--prompt", "The ", "--length", "30", "--seed",
                       str(seed), "--temperature", "0")[1] for seed in (1, 2)]
    assert greedy[0] == greedy[1]  # temperature 0 does not draw: the seed does not matter
    status, _, error = generate(config, capsys, "--length", "20", "--temperature", "-0.5")
    assert status == 2 and "temperature -0.5 is negative" in error
    status, _, error = generate(config, capsys, "--length", "0")
    assert status == 2 and "length 0 is outside 1..2,000" in error
    status, _, error = generate(config, capsys, "--length", str(characters.MAX_LENGTH + 1))
    assert status == 2 and "outside 1..2,000" in error


def test_server_generate_answers_text_and_says_which_prompt_characters_are_unknown(
        generator_config):
    _, registry = generator_config
    with serve(registry) as (base, _):
        request = {"prompt": "Ünïcode ☃ The ", "length": 25, "temperature": 0.8, "seed": 11}
        status, body = call(base, "POST", "/v1/models/writer:generate", request)
        assert status == 200, body
        assert len(body["text"]) >= 1 and body["model_spec"]["version"] == "1"
        assert "☃" in body["unknown_characters"] and "[UNK]" in body["note"]
        assert call(base, "POST", "/v1/models/writer:generate", request)[1]["text"] == body["text"]
        for bad, expected in (({"length": 0}, "length 0 is outside"),
                              ({"length": 10, "temperature": -1}, "negative"),
                              ({"length": 10, "prompt": "x" * (characters.MAX_PROMPT + 1)},
                               "more than the limit"),
                              ({"prompt": "no length"}, "needs \"length\"")):
            status, answer = call(base, "POST", "/v1/models/writer:generate", bad)
            assert status == 400 and expected in answer["error"], answer
        status, answer = call(base, "POST", "/v1/models/writer:predict", {"instances": ["a"]})
        assert status == 400 and ":generate" in answer["error"]
        status, metadata = call(base, "GET", "/v1/models/writer/metadata")
        assert status == 200 and metadata["edgepipe"]["task"] == "generation"
        assert metadata["edgepipe"]["generate_request"]["url"].endswith("/versions/1:generate")
