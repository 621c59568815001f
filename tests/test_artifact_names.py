"""Every artifact file name has one owner in edgepipe.contracts: no stage, server or API module
spells one as a literal (a renamed file would otherwise be renamed in one place only)."""

from __future__ import annotations

import ast

from edgepipe.contracts import artifacts, checksums, registry, text_tokens, unlabeled_artifacts
from tests.conftest import REPO

# (module, literal): the same text meaning something else.
OTHER_MEANINGS = {
    # the label file packed inside a .tflite's standard metadata (MediaPipe's convention), not a
    # file of an artifact folder or registry version
    ("components/tflite_metadata/description.py", "labels.txt"),
}


def contract_names() -> set[str]:
    names = set(artifacts.WRITERS) | {
        artifacts.KERAS_MODEL, artifacts.REPORT_HTML, artifacts.STATISTICS_PROTO,
        artifacts.SCHEMA, artifacts.DATASET_INFO, registry.TFLITE_MODEL, registry.LABELS,
        registry.METADATA, registry.SAVED_MODEL_FILE, checksums.CHECKSUMS,
        text_tokens.VOCABULARY_FILE, unlabeled_artifacts.PSEUDO_LABELS,
        unlabeled_artifacts.LABELING_QUEUE, unlabeled_artifacts.UNLABELED_SOURCES}
    return {name for name in names if "." in name}  # file names, not words


def test_no_artifact_file_name_is_spelt_outside_the_contracts():
    names = contract_names()
    assert {"model.keras", "report.html", "model.tflite", "labels.txt"} <= names
    found = []
    for folder in ("pipeline", "components", "serving", "models", "edgepipe"):
        for path in sorted((REPO / folder).rglob("*.py")):
            where = str(path.relative_to(REPO))
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Constant) and node.value in names
                        and (where, node.value) not in OTHER_MEANINGS):
                    found.append(f"{where}:{node.lineno}: {node.value!r}")
    assert found == []
