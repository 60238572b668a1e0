"""The HTML report in a real headless Chromium: every plot draws, no JS errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tuner.reporting
from tests.conftest import browser_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from test_report import make_study

    path = tmp_path_factory.mktemp("html") / "synthetic-report.html"
    data = tuner.reporting.report(make_study(None, 150), path=path, n_bootstrap=4)
    return path, data


def test_every_plot_draws_an_svg_without_js_errors(report_html, chromium, tmp_path):
    path, _ = report_html
    requests: list[str] = []
    with browser_page(chromium) as (page, errors):
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        containers = page.locator("div.plot")
        n = containers.count()
        # every figure the report could draw for this study, batch size included
        assert n == 8
        page.wait_for_function(
            "() => [...document.querySelectorAll('div.plot')]"
            ".every(d => d.querySelector('svg.main-svg'))",
            timeout=30_000,
        )
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('div.plot')].map(d => "
            "[d.dataset.plot, d.querySelectorAll('svg.main-svg').length, "
            "d.querySelectorAll('.trace, .barlayer .point, .scatterlayer path').length])"
        )
        for plot_id, svgs, marks in drawn:
            assert svgs >= 1, f"{plot_id} drew no SVG"
            assert marks > 0, f"{plot_id} drew an empty chart"
        # the importance chart shows error bars (intervals)
        assert page.locator("#plot-importance .errorbar").count() > 0
        assert "agree" in page.locator("p.statement").inner_text()
        verdicts = page.locator("#declared td").all_inner_texts()
        assert any(v in verdicts for v in ("agrees", "less important than declared"))
        shots = Path(os.environ.get("TUNER_TEST_ARTIFACTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "report.png"), full_page=True)
        assert (shots / "report.png").stat().st_size > 10_000
    assert errors == []
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
