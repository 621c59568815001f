"""Config errors are caught before any stage runs, naming the file and the key."""

import pathlib

import pytest

from edgepipe.pipeline import config, dag

REPO = pathlib.Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "quickstart.toml"


def write_config(tmp_path, text: str) -> pathlib.Path:
    path = tmp_path / "pipeline.toml"
    # The committed quickstart with one edit: paths must stay relative to configs/.
    path.write_text(text.replace('"../data/', f'"{REPO}/data/'))
    return path


def quickstart_with(tmp_path, old: str, new: str) -> pathlib.Path:
    text = QUICKSTART.read_text()
    assert old in text
    return write_config(tmp_path, text.replace(old, new))


def load(path, **kwargs):
    return config.load(path, dag.specs(), **kwargs)


def test_quickstart_loads_with_resolved_paths():
    loaded = load(QUICKSTART)
    assert loaded.name == "quickstart"
    assert loaded.root == (REPO / "artifacts" / "quickstart").resolve()
    ingest = loaded.stages["ingest"]
    assert pathlib.Path(ingest.train_images).is_file()
    assert loaded.stages["train"].epochs == 8


def test_unknown_key_names_section_key_and_file(tmp_path):
    path = quickstart_with(tmp_path, "epochs = 8", "epochs = 8\nepoch_count = 3")
    with pytest.raises(config.ConfigError) as error:
        load(path)
    message = str(error.value)
    assert str(path) in message
    assert "[train] epoch_count: unknown key" in message
    assert "epochs" in message  # says what was expected


def test_wrong_type_names_key_and_value(tmp_path):
    path = quickstart_with(tmp_path, "epochs = 8", 'epochs = "eight"')
    with pytest.raises(config.ConfigError, match=r"\[train\] epochs: .*integer.*'eight'"):
        load(path)


def test_missing_file_names_key_and_path(tmp_path):
    path = quickstart_with(tmp_path, "t10k-labels-idx1-ubyte.gz", "no-such-labels.gz")
    with pytest.raises(config.ConfigError) as error:
        load(path)
    assert "[ingest] test_labels" in str(error.value)
    assert "no-such-labels.gz" in str(error.value)


def test_unknown_section_is_rejected(tmp_path):
    path = quickstart_with(tmp_path, "[report]", "[reprot]")
    with pytest.raises(config.ConfigError, match=r"unknown section \[reprot\]"):
        load(path)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(config.ConfigError, match="Config file not found: .*nowhere.toml"):
        load(tmp_path / "nowhere.toml")


def test_set_overrides_are_typed_and_validated():
    loaded = load(QUICKSTART, overrides=["train.epochs=3", "train.learning_rate=0.01"])
    assert loaded.stages["train"].epochs == 3
    assert loaded.stages["train"].learning_rate == 0.01
    with pytest.raises(config.ConfigError, match=r"\[train\] epochs"):
        load(QUICKSTART, overrides=["train.epochs=many"])
    with pytest.raises(config.ConfigError, match="expected section.key=value"):
        load(QUICKSTART, overrides=["epochs"])


def test_root_and_beam_options_from_command_line(tmp_path):
    loaded = load(
        QUICKSTART,
        root=str(tmp_path / "elsewhere"),
        beam_options=["direct_running_mode=multi_processing", "direct_num_workers=2"],
    )
    assert loaded.root == tmp_path / "elsewhere"
    flags = loaded.runtime.beam_pipeline_options()
    assert "--runner=DirectRunner" in flags
    assert "--direct_num_workers=2" in flags
    assert "--direct_running_mode=multi_processing" in flags


def test_invalid_toml_is_reported_with_file(tmp_path):
    path = write_config(tmp_path, "[pipeline\nname = 1")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        load(path)


# Configs whose data a script in data/ generates (minutes): validated on the tiny set of the
# same layout a fixture writes, unless the real set is there.
GENERATED_DATA = {"speech_keywords_dscnn.toml": ("ingest.train", "audio_tree",
                                                 REPO / "data/generated/speech_commands")}


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.toml")), ids=lambda path: path.name)
def test_every_committed_config_validates(path, request):
    overrides = []
    if path.name in GENERATED_DATA and not GENERATED_DATA[path.name][2].exists():
        key, fixture, _ = GENERATED_DATA[path.name]
        overrides.append(f"{key}={request.getfixturevalue(fixture)}")
    loaded = load(path, overrides=overrides)
    assert loaded.name
    sections = config.read(path)
    # Every stage, but an optional one (tune) only when the config has its section.
    assert set(loaded.stages) == {name for name, spec in dag.specs().items()
                                  if not spec.optional or name in sections}
