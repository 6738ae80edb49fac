"""``conveyor report`` of real deployments on the local cloud, opened in headless Chromium; the dashboard's
metrics as the stages really emitted them.

One canary app with real traffic on its alias: a good build goes live, then a build that fails 3 greetings
in 10 is rolled back. Its post-traffic hook answers with a script in its detail: other people's text, which
the page must show and never run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from conveyor_cli import main as cli
from conveyor_cli.packaging import zip_directory
from conveyor_cli.sample import EXAMPLES
from conveyor_local.server import read_state
from tests.browser import Element, render
from tests.fakes.rollouts import INJECTED

from .conftest import Stage
from .test_progressive_e2e import HEALTH, Outcome, Service

pytestmark = pytest.mark.e2e

HOOK_CODE = f"""
def handler(event, context):
    return {{"status": "pass", "detail": {INJECTED!r}}}
"""


def _hostile_hook(stage: Stage, tmp: Path, name: str) -> str:
    """A managed hook function that passes, with a script as its detail."""
    source = tmp / "hook"
    source.mkdir()
    (source / "app.py").write_text(HOOK_CODE)
    role = stage.cloud.client("iam").get_role(RoleName="hello-sample-execution")["Role"]["Arn"]
    stage.cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_directory(source)},
        Timeout=30,
        Tags={"conveyor:managed": "true"},
    )
    return name


@pytest.fixture(scope="module")
def rollouts(stage: Stage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """A canary app's good deployment, then its rolled-back one."""
    service = Service(stage, "report-canary")
    hook = _hostile_hook(stage, tmp_path_factory.mktemp("hook"), "report-canary-hook")
    service.register(
        {"type": "canary", "weight": 30, "bake_seconds": 200}, {**HEALTH, "post_traffic": {"function_name": hook}}
    )
    good = service.deploy(EXAMPLES / "hello", "2.0.0")
    bad = service.deploy(EXAMPLES / "hello-flaky", "2.1.0")
    assert (good.record.status.value, bad.record.status.value) == ("SUCCEEDED", "ROLLED_BACK")
    return {"good": good, "bad": bad}


def _report(stage: Stage, deployment_id: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> Element:
    monkeypatch.setenv("CONVEYOR_STATE_DIR", str(stage.state_dir))
    assert cli.main(["--local", "report", deployment_id, "-o", str(out)]) == 0
    return render(out / f"conveyor-report-{deployment_id}.html" if out.is_dir() else out)


def _rules_rows(page: Element) -> list[Element]:
    (table,) = page.find_all(lambda e: e.tag == "table" and "rules" in e.classes())
    return [
        Element(row.tag, row.attrs, [c for c in row.children if isinstance(c, Element)])
        for row in table.find_all(lambda e: e.tag == "tr")
    ]


def _markers(page: Element, chart: str) -> list[str]:
    return [m.attrs["data-marker"] for m in page.by_id(chart).find_all(lambda e: "data-marker" in e.attrs)]


def _series(page: Element, chart: str) -> dict[str, int]:
    """Each series of a chart and how many points it drew."""
    return {
        s.attrs["data-series"]: len(s.find_all(lambda e: e.tag == "circle"))
        for s in page.by_id(chart).find_all(lambda e: "data-series" in e.attrs)
    }


def test_the_report_of_a_good_canary_shows_its_stages_traffic_and_verdicts(
    stage: Stage, rollouts: dict[str, Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a canary that went live after judging real traffic at 30% and at 100%
    record = rollouts["good"].record

    # When its report is written and opened in a browser
    page = _report(stage, record.deployment_id, tmp_path, monkeypatch)  # a folder: the page in it, by its name

    # Then the timeline names every stage it went through, in order
    stages = [g.attrs["data-stage"] for g in page.by_id("timeline").find_all(lambda e: "bar" in e.classes())]
    assert stages == [e.stage for e in record.events]
    assert {"ValidateArtifact", "Deploy", "ShiftTraffic", "EvaluateHealth", "Finalize"} <= set(stages)
    assert page.by_id("outcome").text == "SUCCEEDED"
    # And every verdict is marked where it was made; the passing ones at 30% and 100%
    verdicts = [e for e in record.events if e.stage == "EvaluateHealth"]
    assert _markers(page, "traffic-1") == ["fail" if v.failed else v.status for v in verdicts]
    assert "✓ 30%" in page.by_id("traffic-1").text
    assert "✓ 100%" in page.by_id("traffic-1").text
    # And the error rate and latency of both versions come from CloudWatch's per-version metrics
    series = _series(page, "errors-1")
    assert series["version 2 (this release)"] > 0
    assert series["version 1 (before)"] > 0
    assert _series(page, "latency-1")["version 2 (this release)"] > 0
    # And the rules it was judged by are the registered spec's
    rules = {row.children[0].text: row.children[1].text for row in _rules_rows(page)}
    assert (rules["strategy.type"], rules["strategy.weight"]) == ("canary", "30")
    assert rules["health.metrics.min_invocations"] == "5"
    # And no rollback is shown
    assert page.find_all(lambda e: "rollback-box" in e.classes()) == []
    # And the hook's script is on the page as text, and did not run
    (head,) = page.find_all(lambda e: e.tag == "head")
    assert "pwned" not in next(e.text for e in head.children if isinstance(e, Element) and e.tag == "title")
    assert page.find_all(lambda e: e.tag == "script") == []
    hooks = page.find_all(lambda e: e.attrs.get("data-check") == "hook:post_traffic")
    assert hooks
    assert INJECTED in hooks[0].text


def test_the_report_of_a_rolled_back_canary_shows_the_failure_and_the_rollback(
    stage: Stage, rollouts: dict[str, Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the flaky build, rolled back at 30% on its error rate
    record = rollouts["bad"].record
    rollback = record.environments["production"].rollback
    assert rollback is not None

    # When its report is written and opened in a browser
    page = _report(stage, record.deployment_id, tmp_path / "bad.html", monkeypatch)

    # Then the failed verdict and the rollback are marked, and the rollback section says what happened
    assert page.by_id("outcome").text == "ROLLED_BACK"
    markers = _markers(page, "errors-1")
    assert markers[-2:] == ["fail", "rollback"]
    (box,) = page.find_all(lambda e: "rollback-box" in e.classes())
    assert f"version {rollback['restored_version']} serves 100% again (was version 3)" in box.text
    assert f"{rollback['duration_ms']} ms" in box.text
    assert "after the verdict that failed" in box.text
    assert "RollBack" in [
        g.attrs["data-stage"] for g in page.by_id("timeline").find_all(lambda e: "bar" in e.classes())
    ]
    # And the failing check is listed with what it measured
    failed = page.find_all(lambda e: e.attrs.get("data-verdict") == "fail")
    assert failed
    assert "metrics:error_rate" in failed[-1].text
    assert "new.error_rate_percent:" in failed[-1].text
    # And the new version's errors are drawn from CloudWatch: some period shows a non-zero error rate
    series = _series(page, "errors-1")
    assert series["version 3 (this release)"] > 0


def _dashboard_rows(stage: Stage) -> list[tuple[str, str, dict[str, str]]]:
    name = read_state(stage.state_dir)["outputs"]["DashboardName"]
    body = json.loads(stage.cloud.client("cloudwatch").get_dashboard(DashboardName=name)["DashboardBody"])
    rows = []
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            namespace, metric, *pairs = [item for item in row if isinstance(item, str)]
            rows.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return rows


def _listed(stage: Stage, namespace: str, metric: str) -> list[dict[str, str]]:
    pages = (
        stage.cloud.client("cloudwatch").get_paginator("list_metrics").paginate(Namespace=namespace, MetricName=metric)
    )
    return [{d["Name"]: d["Value"] for d in m["Dimensions"]} for page in pages for m in page["Metrics"]]


def test_the_dashboards_metrics_are_the_ones_these_deployments_emitted(
    stage: Stage, rollouts: dict[str, Outcome]
) -> None:
    # Given a deployment that succeeded and one rolled back (their stages' EMF lines reach CloudWatch)
    shown = _dashboard_rows(stage)

    # Then every dashboard metric these two deployments exercise exists with exactly the dimensions shown
    exercised: list[tuple[str, str, dict[str, Any]]] = [
        row
        for row in shown
        if row[1]
        in {"DeploymentsStarted", "Rollbacks", "RollbackDuration", "HealthVerdictPassed", "HealthVerdictFailed"}
        or (row[1] in {"Deployments", "DeploymentDuration"} and row[2].get("outcome") in {"SUCCEEDED", "ROLLED_BACK"})
        or row[0] == "AWS/Lambda"
    ]
    assert len(exercised) >= 15

    def missing() -> list[tuple[str, str, dict[str, Any]]]:
        return [row for row in exercised if row[2] not in _listed(stage, row[0], row[1])]

    # (the reconciler runs asynchronously once the rolled-back execution has ended: its metrics come last)
    deadline = time.monotonic() + 90
    while (absent := missing()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert absent == []
