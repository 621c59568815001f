"""report.html in a real browser: it loads offline without console errors, and every figure
is drawn with real pixels. Uses Debian's chromium (installed by .ci/run where missing)
driven by Playwright; a screenshot is kept in test-artifacts/ for a person to look at."""

from __future__ import annotations

import json
import pathlib
import shutil

import pytest

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIGURES = [
    "fig-label-distribution", "fig-pixel-histogram", "fig-training-examples",
    "fig-training-curves", "fig-confusion-matrix", "fig-reliability", "fig-low-confidence",
    "fig-confident-wrong", "fig-conv-filters", "fig-activation-maps", "fig-variant-tradeoff",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def report_artifact(run_stage, examples_artifact, statistics_artifacts, model_artifact,
                    evaluation_artifact, tflite_artifact):
    inputs = {
        "examples": examples_artifact,
        "statistics": statistics_artifacts["statistics"],
        "model": model_artifact,
        "evaluation": evaluation_artifact,
        "tflite": tflite_artifact,
    }
    _, artifacts = run_stage("report", inputs, {})
    return artifacts["report"]


def open_in_chromium(page_path: pathlib.Path, screenshot: str) -> dict:
    """Loads a report in headless Chromium; returns what a reader's browser saw."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri(), wait_until="load")
        on_page = page.evaluate("() => [...document.querySelectorAll('figure')].map(f => f.id)")
        drawn = {
            figure: page.evaluate(
                """id => { const img = document.querySelector('#' + id + ' img');
                           return img && img.complete && img.getBoundingClientRect().width > 0
                                  ? [img.naturalWidth, img.naturalHeight] : null; }""",
                figure,
            )
            for figure in on_page
        }
        variant_rows = page.locator("#variants-table tr.variant").count()
        confusion_visible = page.locator("#fig-confusion-matrix img").is_visible()
        screenshots = REPO / "test-artifacts"
        screenshots.mkdir(exist_ok=True)
        page.screenshot(path=str(screenshots / screenshot), full_page=True)
        browser.close()
    return {"errors": errors, "requests": requests, "figures": on_page, "drawn": drawn,
            "variant_rows": variant_rows, "confusion_visible": confusion_visible}


def check_page(seen: dict, expected_figures, summary_path: pathlib.Path) -> None:
    assert seen["errors"] == []
    assert seen["figures"] == list(expected_figures)  # every figure of the report, in order
    assert [url for url in seen["requests"] if not url.startswith(("file:", "data:"))] == []
    for figure, size in seen["drawn"].items():
        assert size is not None, f"{figure} missing or not loaded"
        assert size[0] > 100 and size[1] > 100, f"{figure} is {size}"
    assert seen["confusion_visible"]
    summary = json.loads(summary_path.read_text())
    assert seen["variant_rows"] == len(summary["variants"])


def test_report_loads_in_chromium_with_every_figure_drawn(report_artifact, tflite_artifact):
    seen = open_in_chromium(report_artifact.path / "report.html", "report.png")
    check_page(seen, FIGURES, report_artifact.path / "summary.json")
    variants = json.loads((tflite_artifact.path / "variants.json").read_text())
    assert seen["variant_rows"] == len([v for v in variants if not v.get("skipped")]) >= 4


def test_sequence_report_loads_in_chromium_with_every_figure_drawn(run_stage, tmp_path_factory):
    from tests.components.test_report import SEQUENCE_FIGURES, build_sequence_report

    if not (REPO / "data" / "japanese_vowels" / "JapaneseVowels_TRAIN.ts").is_file():
        pytest.skip("data/japanese_vowels is not in this checkout")
    built = build_sequence_report(run_stage, tmp_path_factory)
    folder = built["report"].path
    summary = json.loads((folder / "summary.json").read_text())
    expected = [name for name in SEQUENCE_FIGURES
                if name != "fig-confident-wrong" or summary["most_confidently_wrong_ids"]]
    check_page(open_in_chromium(folder / "report.html", "report_sequence.png"), expected,
               folder / "summary.json")
