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
    "fig-training-curves", "fig-confusion-matrix", "fig-low-confidence", "fig-variant-tradeoff",
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


def test_report_loads_in_chromium_with_every_figure_drawn(report_artifact):
    from playwright.sync_api import sync_playwright

    page_path = report_artifact.path / "report.html"
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
        drawn = {
            figure: page.evaluate(
                """id => { const img = document.querySelector('#' + id + ' img');
                           return img && img.complete ? [img.naturalWidth, img.naturalHeight] : null; }""",
                figure,
            )
            for figure in FIGURES
        }
        variant_rows = page.locator("#variants-table tr.variant").count()
        confusion_visible = page.locator("#fig-confusion-matrix img").is_visible()
        screenshots = REPO / "test-artifacts"
        screenshots.mkdir(exist_ok=True)
        page.screenshot(path=str(screenshots / "report.png"), full_page=True)
        browser.close()

    assert errors == []
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    for figure, size in drawn.items():
        assert size is not None, f"{figure} missing or not loaded"
        assert size[0] > 100 and size[1] > 100, f"{figure} is {size}"
    assert confusion_visible
    variants = json.loads((pathlib.Path(REPO) / report_artifact.path / "summary.json").read_text())
    assert variant_rows == len(variants["variants"]) == 4
