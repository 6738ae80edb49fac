"""The CloudWatch dashboard in template.yaml names only metrics Conveyor and Lambda really publish.

A dashboard widget that names a metric nobody emits (a typo, a renamed metric, the wrong dimension set)
shows "no data" forever and looks like good news. So every metric the dashboard names is checked:
Conveyor's against the ``add_metric`` / ``outcome_metric`` calls in the layer (read with ``ast``, with
the dimensions they carry), Lambda's against what the local cloud emits for every invocation.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

import pytest
from conveyor.domain.closing import emit_outcome_metrics
from conveyor.domain.outcome import Outcome
from conveyor.observability import MetricUnit, metrics

from conveyor_cli.sample import ROOT
from conveyor_local import lambda_telemetry
from conveyor_local.provision import load_template
from conveyor_local.workers import InvocationResult
from tests.fakes.rollouts import rolled_back_canary

LAYER = ROOT / "layers" / "conveyor" / "conveyor"
TEMPLATE = load_template(ROOT / "template.yaml")
GLOBAL_VARIABLES = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
NAMESPACE = GLOBAL_VARIABLES["POWERTOOLS_METRICS_NAMESPACE"]
SERVICE = GLOBAL_VARIABLES["POWERTOOLS_SERVICE_NAME"]
OUTCOMES_COUNTED = {o.value for o in Outcome} - {"IN_PROGRESS", "QUEUED", "SUPERSEDED", "SKIPPED_DUPLICATE"}
"""Outcomes a deployment is counted with when it ends (Finalize, NotifyFailure, Reconcile): superseded and
skipped deployments end without ``emit_outcome_metrics``."""


def _dashboard() -> dict[str, Any]:
    (logical_id,) = [k for k, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    body = TEMPLATE["Resources"][logical_id]["Properties"]["DashboardBody"]["Fn::Sub"]
    # ${Name} becomes "<Name>": what CloudFormation substitutes, kept recognisable.
    return json.loads(re.sub(r"\$\{([^!}][^}]*)\}", r"<\1>", body))


def dashboard_metrics() -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every metric row of every widget."""
    rows = []
    for widget in _dashboard()["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            names = [item for item in row if isinstance(item, str)]
            assert "." not in names, f"a '...' shorthand row hides what it names: {row}"
            namespace, metric, *pairs = names
            rows.append((namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))))
    return rows


def _strings(node: ast.AST, scope: ast.AST) -> set[str] | None:
    """The metric names an argument can take: a literal, either side of ``a if c else b``, or any value of a
    dict literal it indexes (``names[status]``) that was assigned in the same function."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _strings(node.body, scope), _strings(node.orelse, scope)
        return None if body is None or orelse is None else body | orelse
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        for assign in ast.walk(scope):
            if (
                isinstance(assign, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == node.value.id for t in assign.targets)
                and isinstance(assign.value, ast.Dict)
            ):
                values = [_strings(v, scope) for v in assign.value.values]
                if all(v is not None for v in values):
                    return set().union(*(v for v in values if v is not None))
    return None


def emitted_metrics() -> dict[str, set[str]]:
    """Every metric name the layer emits and the dimension keys it carries (besides ``service``).

    ``metrics.add_metric`` shares the invocation's dimensions (``service`` only: nothing calls
    ``metrics.add_dimension``); ``outcome_metric`` adds ``outcome``. A call whose name cannot be read
    statically fails the test: keep metric names literal so the dashboard can be checked.
    """
    found: dict[str, set[str]] = {}
    unreadable = []
    for path in sorted(LAYER.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
        for function in functions:
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                callee = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
                shared = isinstance(call.func, ast.Attribute) and getattr(call.func.value, "id", None) == "metrics"
                if callee == "add_dimension" and shared:
                    pytest.fail(f"{path}:{call.lineno}: metrics.add_dimension puts a dimension on every metric")
                if callee not in ("add_metric", "outcome_metric") or function.name == "outcome_metric":
                    continue
                argument = next(
                    (k.value for k in call.keywords if k.arg == "name"), call.args[0] if call.args else None
                )
                names = _strings(argument, function) if argument is not None else None
                if names is None:
                    unreadable.append(f"{path.relative_to(ROOT)}:{call.lineno}")
                    continue
                for name in names:
                    found.setdefault(name, set()).update({"outcome"} if callee == "outcome_metric" else set())
    assert not unreadable, f"metric names that cannot be read statically: {unreadable}"
    return found


def lambda_metrics(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[set[str]]]:
    """What the local cloud emits to AWS/Lambda for one invocation through an alias: names and dimension sets."""
    emitted: list[tuple[str, list[dict[str, Any]]]] = []

    class Backend:
        def put_metric_data(self, namespace: str, data: list[dict[str, Any]]) -> None:
            emitted.append((namespace, data))

    class Fn:
        account_id, region, version = "123456789012", "us-east-1", "3"

    monkeypatch.setattr(lambda_telemetry, "resolve_dotted", lambda _: {"123456789012": {"us-east-1": Backend()}})
    result = InvocationResult(
        request_id="r",
        payload="{}",
        errored=False,
        logs="",
        duration_ms=5.0,
        init_duration_ms=None,
        timed_out=False,
        worker_pid=1,
        log_stream_name="s",
        max_memory_used_mb=None,
    )
    lambda_telemetry.emit_metrics(Fn(), lambda_telemetry.InvocationTarget("fn", "live"), result)
    found: dict[str, list[set[str]]] = {}
    for namespace, data in emitted:
        assert namespace == "AWS/Lambda"
        for datum in data:
            found.setdefault(datum["MetricName"], []).append({d["Name"] for d in datum["Dimensions"]})
    return found


def test_the_dashboard_exists_and_reads_conveyors_namespace() -> None:
    namespaces = {namespace for namespace, _, _ in dashboard_metrics()}

    assert namespaces == {NAMESPACE, "AWS/Lambda"}


def test_every_conveyor_metric_on_the_dashboard_is_emitted_with_those_dimensions() -> None:
    emitted = emitted_metrics()

    for _, metric, dimensions in (row for row in dashboard_metrics() if row[0] == NAMESPACE):
        assert metric in emitted, f"the dashboard shows {metric}, which no stage emits (emitted: {sorted(emitted)})"
        assert dimensions.pop("service", None) == SERVICE, f"{metric}: every Conveyor metric carries service={SERVICE}"
        assert set(dimensions) == emitted[metric], f"{metric}: emitted with {emitted[metric] or 'service alone'}"
        if "outcome" in dimensions:
            assert dimensions["outcome"] in OUTCOMES_COUNTED, f"{metric}: no deployment ends {dimensions['outcome']}"


def test_the_dashboard_shows_deployments_outcomes_rollback_time_stage_errors_and_durations() -> None:
    shown = {(namespace, metric) for namespace, metric, _ in dashboard_metrics()}

    assert {
        (NAMESPACE, "DeploymentsStarted"),
        (NAMESPACE, "Deployments"),
        (NAMESPACE, "Rollbacks"),
        (NAMESPACE, "RollbackDuration"),
        (NAMESPACE, "DeploymentDuration"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Duration"),
    } <= shown
    outcomes = {d["outcome"] for _, m, d in dashboard_metrics() if m == "Deployments"}
    assert outcomes == OUTCOMES_COUNTED


def test_every_lambda_metric_on_the_dashboard_is_one_lambda_publishes_for_a_stage_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    published = lambda_metrics(monkeypatch)
    functions = {k for k, r in TEMPLATE["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}

    rows = [row for row in dashboard_metrics() if row[0] == "AWS/Lambda"]
    assert rows
    for _, metric, dimensions in rows:
        assert metric in published, f"Lambda publishes no {metric}"
        assert set(dimensions) in published[metric], f"{metric} by {set(dimensions)} is not a set Lambda publishes"
        assert re.fullmatch(r"<(\w+)>", dimensions["FunctionName"]), dimensions
        assert dimensions["FunctionName"].strip("<>") in functions


def test_the_stages_emit_what_the_dashboard_needs_for_rollback_time() -> None:
    assert emitted_metrics()["RollbackDuration"] == set()


def _widgets_fit(widgets: list[dict[str, Any]]) -> bool:
    return all(w["x"] >= 0 and w["x"] + w["width"] <= 24 for w in widgets)


def test_the_widgets_fit_the_24_column_grid() -> None:
    assert _widgets_fit(_dashboard()["widgets"])


def test_the_body_stays_under_cloudwatchs_limit() -> None:
    assert len(json.dumps(_dashboard()).encode()) < 1024 * 1024  # PutDashboard: DashboardBody at most 1 MB


def _emf_dimensions(printed: str) -> dict[str, list[set[str]]]:
    """Metric name -> the dimension sets it was printed with (CloudWatch embedded metric format)."""
    found: dict[str, list[set[str]]] = {}
    for line in printed.splitlines():
        document = json.loads(line) if line.startswith("{") else {}
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                found.setdefault(metric["Name"], []).extend(set(keys) for keys in directive["Dimensions"])
    return found


def test_an_outcome_does_not_put_its_dimension_on_the_invocations_other_metrics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the reconciler's invocation: a rollback counted, then the deployment's outcome
    metrics.add_metric(name="ReconcilerRollbacks", unit=MetricUnit.Count, value=1)
    emit_outcome_metrics(rolled_back_canary(), Outcome.ROLLED_BACK)

    # When the invocation's metrics are flushed
    metrics.flush_metrics()

    # Then the rollback count keeps the dimensions the dashboard reads it by; the outcome goes on its own two
    printed = _emf_dimensions(capsys.readouterr().out)
    assert printed["ReconcilerRollbacks"] == [{"service"}]
    assert printed["Deployments"] == [{"service", "outcome"}]
    assert printed["DeploymentDuration"] == [{"service", "outcome"}]
