"""``conveyor report``: what the page shows, laid out from a ledger record and CloudWatch's numbers."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.session import Session
from botocore.response import StreamingBody
from botocore.stub import Stubber
from conveyor.adapters import aws
from conveyor.adapters.cloudwatch import CloudWatchLambdaMetrics
from conveyor.adapters.s3 import S3Artifacts
from conveyor.domain.environment import EnvironmentEntry, EnvironmentStatus
from conveyor.domain.outcome import Outcome
from conveyor.domain.records import DeploymentRecord, StageEvent

from conveyor_cli.report import build_view, render_html, traffic_series
from conveyor_cli.report_charts import format_offset, nice_ceiling
from conveyor_cli.report_sources import EnvironmentMetrics, metric_period, pipeline_at, read_version_metrics
from tests.fakes.rollouts import INJECTED, START, canary_metrics, rolled_back_canary

NOW = START + timedelta(seconds=100)


def _view(**kwargs: str) -> object:
    return build_view(rolled_back_canary(**kwargs), {"production": canary_metrics()}, generated_at=NOW)


def test_the_timeline_has_one_bar_per_stage_in_the_order_they_ran() -> None:
    view = build_view(rolled_back_canary(), {}, generated_at=NOW)

    assert [bar.label for bar in view.timeline.bars] == [
        "ValidateArtifact",
        "Deploy",
        "ShiftTraffic",
        "EvaluateHealth",
        "EvaluateHealth",
        "RollBack",
        "NotifyFailure",
    ]
    assert [bar.css for bar in view.timeline.bars][3:5] == ["pass", "failed"]
    # Bars sit left to right in time: each starts at or after the one before.
    starts = [bar.x for bar in view.timeline.bars]
    assert starts == sorted(starts)


def test_traffic_moves_to_the_canary_weight_and_back_at_the_rollback() -> None:
    record = rolled_back_canary()
    entry = record.environments["production"]
    events = [e for e in record.events if e.environment == "production"]

    new, old = traffic_series(record, entry, events, rolled_back_at=71.2)

    assert new.label == "version 3 (this release)"
    assert [(round(t, 1), w) for t, w in new.points] == [(1.5, 0.0), (3.3, 30.0), (71.2, 0.0)]
    assert old.label == "version 2 (before)"
    assert [w for _, w in old.points] == [100.0, 70.0, 100.0]


def test_each_verdict_and_the_rollback_are_marked_on_every_chart() -> None:
    view = _view()
    (env,) = view.environments  # type: ignore[attr-defined]

    for chart in (env.traffic, env.error_rate, env.latency):
        assert [m.css for m in chart.markers] == ["pass", "fail", "rollback"]
    assert env.traffic.markers[1].label == "✗ 30%"
    # Marks close together put their labels on different lines.
    assert env.traffic.markers[2].row != env.traffic.markers[1].row


def test_error_rate_per_version_comes_from_cloudwatch_and_what_each_verdict_judged() -> None:
    view = _view()
    (env,) = view.environments  # type: ignore[attr-defined]
    lines = {line.label: line for line in env.error_rate.lines}

    assert set(lines) == {
        "version 3 (this release)",
        "version 2 (before)",
        "judged by a verdict (this release)",
        "judged by a verdict (before)",
    }
    plot_bottom = env.error_rate.plot[3]
    new_heights = [plot_bottom - y for _, y in lines["version 3 (this release)"].points]
    assert new_heights[:4] == [0, 0, 0, 0]  # no errors before 45 s
    assert min(new_heights[4:]) > 0  # 30% after
    # The verdicts' own measurements are dots (not joined): 0% at the pass, 30% at the failure.
    judged = lines["judged by a verdict (this release)"]
    assert not judged.joined
    assert len(judged.points) == 2
    assert judged.points[0][1] > judged.points[1][1]


def test_the_rollback_says_when_by_whom_how_long_and_what_serves_again() -> None:
    view = _view()
    (env,) = view.environments  # type: ignore[attr-defined]

    assert env.rollback is not None
    assert env.rollback.by == "the RollBack stage"
    assert env.rollback.restored_version == "2"
    assert env.rollback.rolled_back_from == "3"
    assert env.rollback.restore_ms == 180.5
    assert env.rollback.after_verdict == "0.7 s"  # failing verdict ended at 70.5 s, restore at 71.2 s
    assert env.rollback.offset == "+1 m 11 s"


def test_every_check_of_every_verdict_is_shown_with_its_evidence() -> None:
    view = _view()
    (env,) = view.environments  # type: ignore[attr-defined]

    assert [v.status for v in env.verdicts] == ["pass", "fail"]
    failed = env.verdicts[1].checks[0]
    assert failed.name == "metrics:error_rate"
    assert failed.status == "fail"
    assert ("new.error_rate_percent", "30.0") in failed.evidence
    assert ("old.invocations", "90") in failed.evidence


def test_a_succeeded_deployment_has_no_rollback_section() -> None:
    record = rolled_back_canary()
    entry = record.environments["production"].model_copy(update={"rollback": None})
    record = record.model_copy(update={"environments": {"production": entry}})

    html = render_html(build_view(record, {}, generated_at=NOW))

    assert 'class="rollback-box' not in html


def test_the_page_is_self_contained_and_carries_no_script() -> None:
    html = render_html(_view())  # type: ignore[arg-type]

    assert "<script" not in html.lower()
    assert not re.search(r"""\s(src|href)\s*=""", html)
    assert "url(" not in html
    assert "@import" not in html
    assert "default-src 'none'" in html  # and a CSP that would refuse one anyway


@pytest.mark.parametrize("where", ["app", "hook_detail"])
def test_an_injected_script_in_ledger_strings_is_escaped(where: str) -> None:
    html = render_html(_view(**{where: INJECTED}))  # type: ignore[arg-type]

    assert INJECTED not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html


def test_metrics_that_cannot_be_read_are_said_so_on_the_page() -> None:
    metrics = EnvironmentMetrics(
        period_seconds=60, unavailable="AWS/Lambda metrics of f:live could not be read: denied"
    )

    html = render_html(build_view(rolled_back_canary(), {"production": metrics}, generated_at=NOW))

    assert "could not be read: denied" in html


@pytest.mark.parametrize(
    ("span", "age", "finest", "period"),
    [
        (timedelta(seconds=30), timedelta(minutes=1), 1, 1),
        (timedelta(minutes=5), timedelta(minutes=10), 1, 5),
        (timedelta(minutes=30), timedelta(hours=1), 1, 30),
        (timedelta(minutes=30), timedelta(hours=1), 60, 60),
        (timedelta(seconds=30), timedelta(hours=5), 1, 60),
        (timedelta(hours=2), timedelta(hours=2), 60, 60),
        (timedelta(hours=10), timedelta(hours=10), 60, 300),
        (timedelta(minutes=5), timedelta(days=20), 60, 300),
        (timedelta(minutes=5), timedelta(days=70), 60, 3600),
    ],
)
def test_the_metric_period_is_one_cloudwatch_serves_for_the_span_and_its_age(
    span: timedelta, age: timedelta, finest: int, period: int
) -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    start = now - age

    assert metric_period(start, start + span, now, finest=finest) == period


def _session() -> Session:
    return Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")


def _cloudwatch() -> tuple[CloudWatchLambdaMetrics, Any]:
    """The adapter the report reads metrics through, and its client (to stub)."""
    session = _session()
    return CloudWatchLambdaMetrics(session), aws.client(session, "cloudwatch")


def test_metrics_are_read_per_executed_version_of_the_alias_and_joined_by_period() -> None:
    metrics, client = _cloudwatch()
    t0, t1 = START, START + timedelta(seconds=10)
    response = {
        "MetricDataResults": [
            {"Id": "inv0", "Timestamps": [t0, t1], "Values": [10.0, 0.0], "StatusCode": "Complete"},
            {"Id": "err0", "Timestamps": [t0], "Values": [3.0], "StatusCode": "Complete"},
            {"Id": "p950", "Timestamps": [t0], "Values": [42.0], "StatusCode": "Complete"},
            {"Id": "inv1", "Timestamps": [t1], "Values": [5.0], "StatusCode": "Complete"},
        ]
    }
    with Stubber(client) as stub:
        stub.add_response("get_metric_data", response)
        found = read_version_metrics(
            metrics, "fn", "live", ["3", "2"], start=START, end=START + timedelta(seconds=30), now=NOW, finest=1
        )

    (point,) = found.versions["3"]  # the period without invocations is no point at all
    assert (point.invocations, point.errors, point.p95_ms, point.error_rate_percent) == (10.0, 3.0, 42.0, 30.0)
    (old,) = found.versions["2"]
    assert (old.errors, old.p95_ms) == (0.0, None)


def test_the_query_names_the_alias_and_each_version() -> None:
    metrics, client = _cloudwatch()
    with Stubber(client) as stub:
        expected_dimensions = [
            {"Name": "FunctionName", "Value": "fn"},
            {"Name": "Resource", "Value": "fn:live"},
            {"Name": "ExecutedVersion", "Value": "3"},
        ]
        queries = [
            {
                "Id": f"{key}0",
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": expected_dimensions},
                    "Period": 60,  # AWS keeps AWS/Lambda metrics per minute
                    "Stat": stat,
                },
                "ReturnData": True,
            }
            for key, metric, stat in (
                ("inv", "Invocations", "Sum"),
                ("err", "Errors", "Sum"),
                ("p95", "Duration", "p95"),
            )
        ]
        stub.add_response(
            "get_metric_data",
            {"MetricDataResults": []},
            {
                "MetricDataQueries": queries,
                "StartTime": START,
                "EndTime": START + timedelta(seconds=30),
                "ScanBy": "TimestampAscending",
            },
        )
        found = read_version_metrics(
            metrics, "fn", "live", ["3"], start=START, end=START + timedelta(seconds=30), now=NOW
        )
    assert found.versions == {"3": []}


def test_a_refusal_from_cloudwatch_gives_a_note_not_a_failure() -> None:
    metrics, client = _cloudwatch()
    with Stubber(client) as stub:
        stub.add_client_error("get_metric_data", "AccessDenied", "not allowed", http_status_code=403)
        found = read_version_metrics(
            metrics, "fn", "live", ["3"], start=START, end=START + timedelta(seconds=30), now=NOW
        )

    assert found.unavailable is not None
    assert "fn:live" in found.unavailable
    assert "not allowed" in found.unavailable


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.25, "+0.2 s"), (12.4, "+12 s"), (125, "+2 m 05 s"), (3725, "+1 h 02 m")]
)
def test_offsets_read_like_a_stopwatch(seconds: float, text: str) -> None:
    assert format_offset(seconds) == text


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1.0), (0.3, 0.3), (27, 30), (31, 40), (100, 100), (101, 150)])
def test_a_y_axis_ends_on_a_round_number_above_the_data(value: float, ceiling: float) -> None:
    assert nice_ceiling(value) == pytest.approx(ceiling)


def _without_rollback_stage(record: DeploymentRecord) -> DeploymentRecord:
    return record.model_copy(update={"events": [e for e in record.events if e.stage != "RollBack"]})


def test_a_rollback_by_the_reconciler_is_dated_when_it_closed_the_deployment() -> None:
    # Given an execution stopped mid-canary: no RollBack stage ran, the reconciler restored the alias
    record = _without_rollback_stage(rolled_back_canary())
    entry = record.environments["production"].model_copy(update={"reconciled": True})
    record = record.model_copy(update={"environments": {"production": entry}})

    (env,) = build_view(record, {}, generated_at=NOW).environments

    assert env.rollback is not None
    assert env.rollback.by == "the reconciler, after the execution ended"
    assert env.rollback.offset == "+1 m 12 s"  # the record's finished_at
    new, _ = env.traffic.lines
    assert new.points[-1][1] == env.traffic.plot[3]  # back to 0% for this release


def test_a_manual_rollback_names_the_person() -> None:
    # Given a live deployment rolled back by hand later (conveyor rollback)
    record = _without_rollback_stage(rolled_back_canary())
    manual = StageEvent(
        deployment_id="d-1",
        stage="ManualRollback",
        environment="production",
        status="succeeded",
        started_at=START + timedelta(seconds=90),
        finished_at=START + timedelta(seconds=90.1),
        duration_ms=100,
        detail={"restored_version": "2", "rolled_back_from": "3", "operator": "dana"},
    )
    entry = record.environments["production"].model_copy(
        update={"rollback": {"restored_version": "2", "rolled_back_from": "3", "operator": "dana", "duration_ms": 100}}
    )
    record = record.model_copy(update={"events": [*record.events, manual], "environments": {"production": entry}})

    (env,) = build_view(record, {}, generated_at=NOW).environments

    assert env.rollback is not None
    assert env.rollback.by == "a person (dana), with conveyor rollback"
    assert env.rollback.offset == "+1 m 30 s"


def test_an_environment_that_never_deployed_has_empty_charts_that_say_so() -> None:
    record = rolled_back_canary()
    waiting = EnvironmentEntry(status=EnvironmentStatus.QUEUED)
    record = record.model_copy(update={"environments": {**record.environments, "later": waiting}})

    view = build_view(record, {}, generated_at=NOW)

    later = view.environments[1]
    assert later.target == "(not deployed)"
    assert later.traffic.lines == ()
    assert later.traffic.empty_note == "no traffic step was taken"
    assert "no health verdict was made in later" in render_html(view)


def test_a_deployment_refused_at_validation_shows_its_timeline_and_why() -> None:
    record = rolled_back_canary()
    record = record.model_copy(
        update={
            "status": Outcome.FAILED,
            "environments": {},
            "events": record.events[:1],
            "failure": {"error": "ManifestInvalidError", "reason": "manifest.json: version is missing"},
        }
    )

    view = build_view(record, {}, generated_at=NOW)
    html = render_html(view)

    assert [bar.label for bar in view.timeline.bars] == ["ValidateArtifact"]
    assert view.environments == []
    assert ("reason", "manifest.json: version is missing") in view.failure
    assert 'class="environment"' not in html


SPEC_V1 = b"""
app: hello
environments:
  - name: production
    target: {function_name: hello-production, alias: live}
    strategy: {type: canary, weight: 30, bake_seconds: 60}
    health:
      metrics: {min_invocations: 5, max_error_rate_percent: 1}
      alarms: [hello-errors]
"""


def _s3() -> tuple[S3Artifacts, Any]:
    """The adapter the report reads the spec through, and its client (to stub)."""
    session = _session()
    return S3Artifacts(session), aws.client(session, "s3")


def _versions(*when: datetime) -> dict[str, object]:
    return {
        "Versions": [
            {"Key": "pipelines/hello.yaml", "VersionId": f"v{i}", "LastModified": at, "Size": len(SPEC_V1)}
            for i, at in enumerate(when, start=1)
        ]
    }


def test_the_rules_shown_are_the_spec_registered_when_the_deployment_was_validated() -> None:
    # Given a spec registered before the push (v1) and one applied after it (v2)
    artifacts, client = _s3()
    with Stubber(client) as stub:
        stub.add_response("list_object_versions", _versions(START - timedelta(hours=1), START + timedelta(minutes=5)))
        stub.add_response(
            "get_object",
            {"Body": StreamingBody(io.BytesIO(SPEC_V1), len(SPEC_V1))},
            {"Bucket": "b", "Key": "pipelines/hello.yaml", "VersionId": "v1"},
        )

        # When the report reads the spec as of its validation
        registered = pipeline_at(artifacts, "b", "hello", START)

    # Then it is v1's, and the page lists its rules as data
    assert registered.spec is not None
    assert "version v1" in registered.source
    view = build_view(rolled_back_canary(), {}, generated_at=NOW, spec=registered)
    rules = dict(view.environments[0].rules)
    assert rules["strategy.type"] == "canary"
    assert rules["strategy.weight"] == "30"
    assert rules["health.metrics.max_error_rate_percent"] == "1.0"
    assert rules["health.alarms"] == '["hello-errors"]'
    assert "health.metrics.max_error_rate_percent" in render_html(view)


def test_a_spec_that_cannot_be_read_is_said_so_in_place_of_the_rules() -> None:
    artifacts, client = _s3()
    with Stubber(client) as stub:
        stub.add_client_error("list_object_versions", "AccessDenied", "not allowed", http_status_code=403)
        registered = pipeline_at(artifacts, "b", "hello", START)

    view = build_view(rolled_back_canary(), {}, generated_at=NOW, spec=registered)

    assert view.environments[0].rules == []
    assert "s3://b/pipelines/hello.yaml could not be read" in view.environments[0].rules_source


def test_a_spec_registered_only_after_the_deployment_is_not_taken_for_its_rules() -> None:
    artifacts, client = _s3()
    with Stubber(client) as stub:
        stub.add_response("list_object_versions", _versions(START + timedelta(minutes=5)))
        registered = pipeline_at(artifacts, "b", "hello", START)

    assert registered.spec is None
    assert registered.source == "no version of s3://b/pipelines/hello.yaml was registered before this deployment"


def test_a_restore_the_reconciler_found_already_done_is_not_said_to_have_moved_no_traffic() -> None:
    # Given production found already back on version 2 by the reconciler (RollBack restored it unrecorded)
    record = rolled_back_canary()
    production = record.environments["production"]
    rollback = {**(production.rollback or {}), "rolled_back_from": None, "found_restored": True}
    record = record.model_copy(
        update={
            "environments": {**record.environments, "production": production.model_copy(update={"rollback": rollback})}
        }
    )

    # Then the page says it was found restored, not that traffic had not moved
    html = render_html(build_view(record, {}, generated_at=NOW))
    assert "version 2 serves 100% (found already restored when the reconciler checked)" in html
    assert "traffic had not moved" not in html


def test_an_environment_without_a_new_version_says_so_never_version_none() -> None:
    record = rolled_back_canary()
    production = record.environments["production"]
    deploying = production.model_copy(update={"status": EnvironmentStatus.LOCKED, "version_after": None})
    unfinished = record.model_copy(
        update={
            "status": Outcome.IN_PROGRESS,
            "environments": {"production": deploying, "later": EnvironmentEntry(status=EnvironmentStatus.PENDING)},
        }
    )
    ended = unfinished.model_copy(update={"status": Outcome.FAILED})

    view, ended_view = build_view(unfinished, {}, generated_at=NOW), build_view(ended, {}, generated_at=NOW)

    before = f"version {production.version_before} before"
    assert [env.versions for env in view.environments] == [f"{before}, no new version deployed yet", "not reached yet"]
    assert [env.versions for env in ended_view.environments] == [
        f"{before}, no new version deployed",
        "not reached: nothing deployed",
    ]
    assert "(none)" not in render_html(view)
