"""``conveyor report``'s page as a browser shows it: headless Chromium loads the file, the test reads the DOM.

The record is a canary rolled back on its error rate, carrying a script in its app name and in a hook's
answer (both other people's text): the page must show them as text and run nothing.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conveyor_cli.report import build_view, render_html
from tests.browser import Element, render
from tests.fakes.rollouts import INJECTED, START, canary_metrics, rolled_back_canary


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Element:
    record = rolled_back_canary(app=INJECTED, hook_detail=INJECTED)
    view = build_view(record, {"production": canary_metrics()}, generated_at=START + timedelta(seconds=100))
    path = Path(tmp_path_factory.mktemp("report")) / "report.html"
    path.write_text(render_html(view), encoding="utf-8")
    return render(path)


def test_the_timeline_shows_every_stage_by_name(page: Element) -> None:
    timeline = page.by_id("timeline")
    bars = timeline.find_all(lambda e: e.tag == "g" and "bar" in e.classes())

    assert [bar.attrs["data-stage"] for bar in bars] == [
        "ValidateArtifact",
        "Deploy",
        "ShiftTraffic",
        "EvaluateHealth",
        "EvaluateHealth",
        "RollBack",
        "NotifyFailure",
    ]
    assert "RollBack · production" in timeline.text


def test_each_verdict_is_marked_on_the_charts_and_listed_with_its_checks(page: Element) -> None:
    traffic = page.by_id("traffic-1")
    markers = traffic.find_all(lambda e: e.tag == "g" and "marker" in e.classes())

    assert [m.attrs["data-marker"] for m in markers] == ["pass", "fail", "rollback"]
    assert "✗ 30%" in markers[1].text
    for chart in ("errors-1", "latency-1"):
        assert {m.attrs["data-marker"] for m in page.by_id(chart).find_all(lambda e: "data-marker" in e.attrs)} == {
            "pass",
            "fail",
            "rollback",
        }
    verdicts = page.find_all(lambda e: "data-verdict" in e.attrs)
    assert [v.attrs["data-verdict"] for v in verdicts] == ["pass", "fail"]
    assert "metrics:error_rate" in verdicts[1].text
    assert "new.error_rate_percent: 30.0" in verdicts[1].text


def test_the_traffic_chart_draws_both_versions(page: Element) -> None:
    series = page.by_id("traffic-1").find_all(lambda e: "data-series" in e.attrs)

    assert [s.attrs["data-series"] for s in series] == ["version 3 (this release)", "version 2 (before)"]
    assert all(s.find_all(lambda e: e.tag == "polyline") for s in series)


def test_the_rollback_section_says_what_was_restored_and_how_long_it_took(page: Element) -> None:
    (rollback,) = page.find_all(lambda e: "rollback-box" in e.classes())

    assert rollback.attrs["data-environment"] == "production"
    assert "version 2 serves 100% again (was version 3)" in rollback.text
    assert "180.5 ms, 0.7 s after the verdict that failed" in rollback.text


def test_an_injected_script_is_shown_as_text_and_never_runs(page: Element) -> None:
    # Had the script run, it would have set the title; had it not been escaped, it would be an element.
    (head,) = page.find_all(lambda e: e.tag == "head")
    (title,) = [e for e in head.children if isinstance(e, Element) and e.tag == "title"]
    assert title.text == f"Conveyor report: {INJECTED} 2.1.0 (ROLLED_BACK)"
    assert page.find_all(lambda e: e.tag == "script") == []
    assert page.by_id("app").text == INJECTED
    hook = page.find_all(lambda e: e.attrs.get("data-check") == "hook:pre_traffic")
    assert INJECTED in hook[0].text
