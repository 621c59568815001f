"""The documentation stays true to the code: every config key is in the configuration
reference (and every key there is real), every relative link resolves, the README stays short
and points at every page of docs/.

The config keys come from the pydantic models themselves (the pipeline's own sections and
each stage's Config as the DAG names it), so adding, renaming or removing a key without
updating docs/configuration.md fails here with the section and key named.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from edgepipe.pipeline import config, dag
from tests.conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
REFERENCE = DOCS / "configuration.md"
MAX_README_LINES = 150

# Stage Config fields that are not keys of the stage's own section: the config loader fills
# them from another section ([registry] is handed to evaluate and push, [pipeline] task to
# every stage that asks the task, [forecast] to ingest).
INJECTED = {"registry", "task", "forecast"}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
TABLE_KEY = re.compile(r"^\|\s*`([^`]+)`\s*\|")


def config_sections() -> dict[str, set[str]]:
    """Section name -> the keys a user may write in it, read from the pydantic models."""
    specs = dag.specs()
    models = {**config.SECTIONS, **{name: spec.config for name, spec in specs.items()}}
    sections = {}
    for name, model in models.items():
        keys = set(model.model_fields)
        if name not in config.SECTIONS:
            # and the other stages' sections the loader hands over (tune reads [train])
            keys -= INJECTED | set(specs[name].reads)
        sections[name] = keys
        for key in keys:  # a nested table, e.g. [train.semi_supervised], is its own section
            nested = nested_model(model.model_fields[key].annotation)
            if nested is not None:
                sections[f"{name}.{key}"] = set(nested.model_fields)
    return sections


def nested_model(annotation):
    """The pydantic model a field holds (also as `Model | None`), or None. A table of tables
    (`dict[str, Model]`, e.g. [kfp.resources.<stage>]) is documented with its parent key."""
    import typing

    import pydantic

    if typing.get_origin(annotation) is dict:
        return None
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel):
            return candidate
    return None


def section_text(name: str, text: str | None = None) -> str | None:
    """The part of the configuration reference from the line starting with "## [name]" to
    the next "## " heading, or None when there is no such heading."""
    lines = (REFERENCE.read_text() if text is None else text).splitlines()
    for start, line in enumerate(lines):
        if line.startswith(f"## [{name}]"):
            end = next((index for index in range(start + 1, len(lines))
                        if lines[index].startswith("## ")), len(lines))
            return "\n".join(lines[start:end])
    return None


def table_keys(text: str) -> list[str]:
    """The keys in the first column of the Markdown tables of a section (code blocks aside)."""
    return [match.group(1) for line in FENCE.sub("", text).splitlines()
            if (match := TABLE_KEY.match(line.strip()))]


def markdown_files() -> list[pathlib.Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def relative_links(path: pathlib.Path) -> list[str]:
    """Link targets in a Markdown file that point into the repository (no URL, no mail, no
    in-page anchor), outside code blocks and code spans."""
    text = INLINE_CODE.sub("", FENCE.sub("", path.read_text()))
    targets = [match.group(1) for match in LINK.finditer(text)]
    return [target for target in targets
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)
            and not target.startswith("#")]


def test_the_config_models_are_found():
    """The check below is only as good as the sections it finds."""
    sections = config_sections()
    expected = {"pipeline", "beam", "runtime", "registry", "ingest", "statistics", "tune",
                "train", "evaluate", "quantize", "report", "push"}
    assert expected <= set(sections), f"sections found: {sorted(sections)}"
    assert {"source", "train_images", "record_separator"} <= sections["ingest"], (
        "the [ingest] keys must come from the ingest stage's Config (the sources' config)")
    assert "registry" not in sections["evaluate"] | sections["push"]


@pytest.mark.parametrize("section", sorted(config_sections()))
def test_every_config_key_is_documented_under_its_section(section):
    text = section_text(section)
    assert text is not None, (
        f"docs/configuration.md has no heading '## [{section}]': document the [{section}] "
        f"section and its keys {sorted(config_sections()[section])}")
    # A key counts as documented when it has its own table row (first column `key`), not
    # when it is merely mentioned in another key's meaning.
    documented = set(table_keys(text))
    missing = [key for key in sorted(config_sections()[section]) if key not in documented]
    assert not missing, "\n".join(
        f"docs/configuration.md: key `{key}` of section [{section}] is not documented under "
        f"'## [{section}]' (add a table row: | `{key}` | type | default | meaning |)"
        for key in missing)


@pytest.mark.parametrize("section", sorted(config_sections()))
def test_every_documented_key_exists(section):
    """The reverse: a key in a section's table that no Config has is a stale doc."""
    text = section_text(section) or ""
    real = config_sections()[section]
    stale = [key for key in table_keys(text) if key not in real]
    assert not stale, "\n".join(
        f"docs/configuration.md documents `{key}` under '## [{section}]', but section "
        f"[{section}] has no such key (its keys: {', '.join(sorted(real)) or 'none'})"
        for key in stale)


def test_the_reference_documents_no_unknown_section():
    sections = set(config_sections())
    headings = re.findall(r"^## \[([^\]]+)\]", REFERENCE.read_text(), re.MULTILINE)
    unknown = sorted(set(headings) - sections)
    assert not unknown, f"docs/configuration.md has sections the config does not: {unknown}"
    duplicated = sorted({name for name in headings if headings.count(name) > 1})
    assert not duplicated, f"docs/configuration.md has these section headings twice: {duplicated}"


def test_the_section_checks_catch_a_missing_and_a_stale_key():
    """The checks themselves, on a made-up reference."""
    text = ("## [train]\n\n| key | type |\n|---|---|\n| `epochs` | integer |\n"
            "| `epoch_count` | integer |\n\n## [evaluate]\n\n| `min_accuracy` | float |\n")
    train = section_text("train", text)
    assert table_keys(train) == ["epochs", "epoch_count"] and "`min_accuracy`" not in train
    assert [key for key in table_keys(train) if key not in config_sections()["train"]] == [
        "epoch_count"]
    assert section_text("quantize", text) is None


@pytest.mark.parametrize("path", markdown_files(), ids=lambda path: path.name)
def test_every_relative_link_points_at_an_existing_file(path):
    broken = []
    for target in relative_links(path):
        file_part = target.split("#", 1)[0]
        if file_part and not (path.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{path.relative_to(REPO)}: links to missing files: {broken}"


def test_the_link_check_sees_links_but_not_code():
    text = ("See [a](a.md) and [b](../README.md#top), [web](https://example.org), [c](#here).\n"
            "`[not](inline.md)`\n```\n[not](fenced.md)\n```\n")
    links = [match.group(1) for match in LINK.finditer(INLINE_CODE.sub("", FENCE.sub("", text)))]
    assert links == ["a.md", "../README.md#top", "https://example.org", "#here"]


def test_readme_is_short_and_has_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move detail to docs/")
    text = "\n".join(lines)
    assert "make run" in text and "make test" in text


def test_readme_links_every_docs_page():
    linked = {(README.parent / target.split("#", 1)[0]).resolve()
              for target in relative_links(README)}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"README.md's 'Read on' list does not link: {unlinked}"


def test_readme_python_example_comes_first_and_uses_the_api():
    """The first ```python block is the runnable example; it uses only the public API."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks, "README.md has no ```python block"
    example = blocks[0]
    compile(example, "README.md", "exec")
    assert "import edgepipe" in example and "edgepipe.run(" in example


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda path: path.name)
def test_every_docs_page_has_a_title_and_a_summary(page):
    lines = page.read_text().splitlines()
    assert lines and lines[0].startswith("# "), f"docs/{page.name} must start with a '# ' title"
    body = next((line for line in lines[1:] if line.strip()), "")
    assert body and not body.startswith(("#", "|", "```", "-")), (
        f"docs/{page.name}: the title must be followed by a one-paragraph summary")
