"""Progressive delivery end to end: canary, linear and blue/green from an S3 upload, on the local cloud.

Each test deploys to its own function (an app of its own, so the sample app's pipeline is untouched),
with the traffic generator invoking the alias so per-version metric analysis sees real traffic.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.outcome import Outcome as DeploymentOutcome
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import main as cli
from conveyor_cli import operations
from conveyor_cli.approvals import decide
from conveyor_cli.packaging import build_bundle, zip_directory
from conveyor_cli.sample import EXAMPLES, drain_inbox
from conveyor_cli.status import OUTCOME_EXIT_CODES
from conveyor_cli.traffic import TrafficGenerator, TrafficSummary, loopback_endpoint

from .conftest import Stage
from .test_safety_e2e import until

pytestmark = pytest.mark.e2e

RPS = 25
METRICS = {"min_invocations": 5, "max_error_rate_percent": 1, "max_error_rate_ratio": 2}
HEALTH = {
    "synthetic": {"payload": {"probe": "health"}, "expect": {"status": "ok"}},
    "metrics": METRICS,
    "on_inconclusive": "retry",
    "max_inconclusive_retries": 4,
}


@dataclass
class Outcome:
    record: DeploymentRecord
    alias: dict[str, Any]
    notifications: list[dict[str, str]]
    traffic: TrafficSummary | None

    def verdicts(self) -> list[dict[str, Any]]:
        """Each EvaluateHealth event's verdict (the ledger keeps its status as the event's status)."""
        # A verdict says "fail" where its stage event says "failed".
        return [
            {**e.detail, "status": "fail" if e.failed else e.status}
            for e in self.record.events
            if e.stage == "EvaluateHealth"
        ]


class Service:
    """One managed function with alias ``live`` on version 1, and its own app's pipeline."""

    def __init__(self, stage: Stage, app: str) -> None:
        self.stage, self.app, self.function = stage, app, f"{app}-fn"
        lam = stage.cloud.client("lambda")
        role = stage.cloud.client("iam").get_role(RoleName="hello-sample-execution")["Role"]["Arn"]
        lam.create_function(
            FunctionName=self.function,
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": zip_directory(EXAMPLES / "hello")},
            Timeout=10,
            Environment={"Variables": {"RELEASE": "1.0.0"}},
            Tags={"conveyor:managed": "true", "app": app},
        )
        version = lam.publish_version(FunctionName=self.function)["Version"]
        lam.create_alias(FunctionName=self.function, Name="live", FunctionVersion=version)

    def register(self, strategy: dict[str, Any], health: dict[str, Any]) -> None:
        spec = {
            "app": self.app,
            "environments": [
                {
                    "name": "production",
                    "target": {"function_name": self.function, "alias": "live"},
                    "strategy": strategy,
                    "health": health,
                }
            ],
        }
        path = self.stage.workdir / f"{self.app}.yaml"
        path.write_text(json.dumps(spec))  # JSON is YAML
        operations.apply_pipeline(self.stage.cloud, path)

    def alias(self) -> dict[str, Any]:
        alias = self.stage.cloud.client("lambda").get_alias(FunctionName=self.function, Name="live")
        return {
            "version": alias["FunctionVersion"],
            "routing": alias.get("RoutingConfig", {}).get("AdditionalVersionWeights", {}),
        }

    def push(self, source: Path, version: str) -> str:
        data, _ = build_bundle(
            source, app=self.app, version=version, function_config=FunctionConfig(environment={"RELEASE": version})
        )
        path = self.stage.workdir / f"{self.app}-{version}.zip"
        path.write_bytes(data)
        return str(operations.push(self.stage.cloud, path)["deployment_id"])

    def traffic(self) -> TrafficGenerator:
        endpoint = loopback_endpoint(self.stage.cloud)
        return TrafficGenerator(
            endpoint, self.function, "live", rps=RPS, duration_seconds=300, session=self.stage.cloud.session
        )

    def deploy(self, source: Path, version: str, *, with_traffic: bool = True) -> Outcome:
        generator = self.traffic().start() if with_traffic else None
        try:
            if generator is not None:  # a baseline for the old version: its invocations, not a second of time
                until(
                    lambda: generator.summary.sent - generator.summary.failed_calls >= METRICS["min_invocations"],
                    "the old version served a baseline of traffic",
                )
            record = operations.wait(self.stage.cloud, self.push(source, version), timeout=240)
        finally:
            summary = generator.stop() if generator else None
        return Outcome(
            record=record,
            alias=self.alias(),
            notifications=self.stage.notifications_naming(record.deployment_id),
            traffic=summary,
        )


@pytest.fixture
def service(stage: Stage, request: pytest.FixtureRequest) -> Service:
    drain_inbox(stage.cloud, stage.targets.inbox_url)
    app = request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    return Service(stage, app)


def _status_json(stage: Stage, deployment_id: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> Any:
    monkeypatch.setenv("CONVEYOR_STATE_DIR", str(stage.state_dir))
    capsys.readouterr()
    code = cli.main(["--local", "status", deployment_id, "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == OUTCOME_EXIT_CODES[DeploymentOutcome(document["status"])]
    return document


# --- canary ----------------------------------------------------------------------------------
def test_canary_promotes_a_good_build_after_judging_real_traffic(
    service: Service, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a canary pipeline that judges per-version metrics, and traffic on the alias
    service.register({"type": "canary", "weight": 30, "bake_seconds": 200}, HEALTH)

    # When a good build is pushed
    outcome = service.deploy(EXAMPLES / "hello", "2.0.0")

    # Then it went live at 100% after a passing verdict at 30% and at 100%
    assert outcome.record.status.value == "SUCCEEDED"
    assert outcome.alias == {"version": "2", "routing": {}}
    passed = [v for v in outcome.verdicts() if v["status"] == "pass"]
    assert [v["weight"] for v in passed] == [30, 100]
    # And the canary verdict's evidence is the new version's real traffic, visible in `conveyor status --json`
    document = _status_json(service.stage, outcome.record.deployment_id, capsys, monkeypatch)
    judged = [e["detail"] for e in document["events"] if e["stage"] == "EvaluateHealth" and e["status"] == "pass"]
    canary_metrics = [c for c in judged[0]["checks"] if c["kind"] == "metrics"]
    assert canary_metrics
    assert canary_metrics[0]["evidence"]["new"]["version"] == "2"
    assert canary_metrics[0]["evidence"]["new"]["invocations"] >= METRICS["min_invocations"]
    assert canary_metrics[0]["evidence"]["new"]["errors"] == 0
    assert outcome.traffic is not None
    assert outcome.traffic.by_version["2"] > 0
    assert outcome.notifications == []


def test_canary_rolls_back_a_build_that_fails_only_under_real_traffic(service: Service) -> None:
    # Given a live good build behind a canary pipeline
    service.register({"type": "canary", "weight": 30, "bake_seconds": 200}, HEALTH)
    assert service.deploy(EXAMPLES / "hello", "2.0.0").record.status.value == "SUCCEEDED"

    # When a build that fails 3 in 10 greetings (but answers the health probe) is pushed
    outcome = service.deploy(EXAMPLES / "hello-flaky", "2.1.0")

    # Then the canary verdict failed on the error rate, within one interval, and the old version serves 100%
    assert outcome.record.status.value == "ROLLED_BACK"
    assert outcome.alias == {"version": "2", "routing": {}}
    final = [v for v in outcome.verdicts() if v["status"] != "inconclusive"]
    assert [(v["status"], v["weight"]) for v in final] == [("fail", 30)]
    failed = {c["name"] for c in final[0]["checks"] if c["status"] == "fail"}
    assert "metrics:error_rate" in failed
    assert any(c["name"] == "synthetic" and c["status"] == "pass" for c in final[0]["checks"])
    assert not any(e.stage == "ShiftTraffic" and e.detail.get("weight") == 100 for e in outcome.record.events)
    # And one notification gives the measurement, the limit and how long the rollback took
    assert len(outcome.notifications) == 1
    message = outcome.notifications[0]["message"]
    assert "errors " in message
    assert "on v3 vs " in message
    assert "limit 1%" in message
    assert "restored to version 2 (was 3) in " in message


# --- linear ----------------------------------------------------------------------------------
def test_linear_walks_every_step_to_100_percent(service: Service) -> None:
    # Given a linear pipeline, 40% a step
    service.register({"type": "linear", "step_percent": 40, "interval_seconds": 150}, HEALTH)

    # When a good build is pushed
    outcome = service.deploy(EXAMPLES / "hello", "2.0.0")

    # Then every step was judged and passed, and the alias serves the new version alone
    assert outcome.record.status.value == "SUCCEEDED"
    assert outcome.alias == {"version": "2", "routing": {}}
    shifts = [e.detail["weight"] for e in outcome.record.events if e.stage == "ShiftTraffic"]
    assert shifts == [40, 80, 100]
    assert [v["weight"] for v in outcome.verdicts() if v["status"] == "pass"] == [40, 80, 100]


def test_linear_rolls_back_at_the_first_step_that_fails(service: Service) -> None:
    # Given a live good build behind a linear pipeline
    service.register({"type": "linear", "step_percent": 40, "interval_seconds": 150}, HEALTH)
    assert service.deploy(EXAMPLES / "hello", "2.0.0").record.status.value == "SUCCEEDED"

    # When the flaky build is pushed
    outcome = service.deploy(EXAMPLES / "hello-flaky", "2.1.0")

    # Then the 40% step failed and the alias went back to version 2 with routing cleared
    assert outcome.record.status.value == "ROLLED_BACK"
    assert outcome.alias == {"version": "2", "routing": {}}
    final = [v for v in outcome.verdicts() if v["status"] != "inconclusive"]
    assert [(v["status"], v["weight"]) for v in final] == [("fail", 40)]
    assert outcome.record.environments["production"].rollback["restored_version"] == "2"


# --- blue/green ------------------------------------------------------------------------------
def _hook(service: Service) -> str:
    """The example smoke-test hook, deployed as a managed function of the service's team."""
    name = f"{service.app}-hook"
    role = service.stage.cloud.client("iam").get_role(RoleName="hello-sample-execution")["Role"]["Arn"]
    service.stage.cloud.client("lambda").create_function(
        FunctionName=name,
        Runtime="python3.11",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_directory(EXAMPLES / "hooks" / "smoke_test")},
        Timeout=30,
        Tags={"conveyor:managed": "true"},
    )
    return name


def _blue_green(service: Service) -> None:
    hook = _hook(service)
    health = {
        **HEALTH,
        "pre_traffic": {"function_name": hook},
        "post_traffic": {"function_name": hook},
    }
    service.register({"type": "blue_green", "bake_seconds": 200}, health)


def test_blue_green_verifies_the_idle_version_then_switches_in_one_step(service: Service) -> None:
    # Given a blue/green pipeline with pre- and post-traffic hooks
    _blue_green(service)

    # When a good build is pushed
    outcome = service.deploy(EXAMPLES / "hello", "2.0.0")

    # Then the new version was verified at 0% (synthetic + pre-traffic hook), then switched 0 -> 100 at once
    assert outcome.record.status.value == "SUCCEEDED"
    assert outcome.alias == {"version": "2", "routing": {}}
    shifts = [e.detail["weight"] for e in outcome.record.events if e.stage == "ShiftTraffic"]
    assert shifts == [0, 100]
    verify, bake = [v for v in outcome.verdicts() if v["status"] == "pass"]
    assert {c["name"] for c in verify["checks"]} == {"synthetic", "hook:pre_traffic"}
    assert {"hook:post_traffic", "metrics:error_rate"} <= {c["name"] for c in bake["checks"]}
    assert "5 greetings to" in next(c["reason"] for c in verify["checks"] if c["name"] == "hook:pre_traffic")


def test_blue_green_rejects_a_bad_build_before_it_serves_any_traffic(service: Service) -> None:
    # Given a live good build behind a blue/green pipeline
    _blue_green(service)
    assert service.deploy(EXAMPLES / "hello", "2.0.0").record.status.value == "SUCCEEDED"

    # When the flaky build is pushed (its health probe passes; the pre-traffic hook's greetings do not)
    outcome = service.deploy(EXAMPLES / "hello-flaky", "2.1.0")

    # Then verification at 0% failed, the alias never moved, and production traffic never reached it
    assert outcome.record.status.value == "ROLLED_BACK"
    assert outcome.alias == {"version": "2", "routing": {}}
    assert [e.detail["weight"] for e in outcome.record.events if e.stage == "ShiftTraffic"] == [0]
    (verdict,) = outcome.verdicts()
    assert verdict["status"] == "fail"
    assert [c["name"] for c in verdict["checks"] if c["status"] == "fail"] == ["hook:pre_traffic"]
    assert outcome.traffic is not None
    assert outcome.traffic.by_version.get("3", 0) == 0
    assert "pre_traffic hook" in outcome.notifications[0]["message"]


# --- inconclusive and crashes ------------------------------------------------------------------
def test_no_data_is_judged_again_then_fails_never_passes(service: Service) -> None:
    # Given a canary whose metrics need invocations, retrying once, and no traffic at all
    health = {"metrics": METRICS, "on_inconclusive": "retry", "max_inconclusive_retries": 1}
    service.register({"type": "canary", "weight": 10, "bake_seconds": 60}, health)

    # When a build is pushed with nobody calling the alias
    outcome = service.deploy(EXAMPLES / "hello", "2.0.0", with_traffic=False)

    # Then the canary was inconclusive, judged once more after another interval, then failed and rolled back
    assert outcome.record.status.value == "ROLLED_BACK"
    assert [(v["status"], v["inconclusive_count"]) for v in outcome.verdicts()] == [
        ("inconclusive", 1),
        ("fail", 0),
    ]
    assert "not enough data: 0 invocations of v2" in outcome.verdicts()[-1]["reason"]
    assert outcome.alias == {"version": "1", "routing": {}}


def test_a_crash_while_shifting_traffic_still_restores_the_alias(service: Service) -> None:
    # Given a canary at 20% whose verdict cannot be reached (no traffic), so the rollout pauses for a person
    health = {"metrics": {"min_invocations": 100_000}, "on_inconclusive": "pause"}
    service.register({"type": "canary", "weight": 20, "bake_seconds": 60}, health)
    deployment = service.push(EXAMPLES / "hello", "2.0.0")
    paused = until(
        lambda: (
            (r := operations.ledger(service.stage.cloud).get(deployment))
            and (entry := r.environments.get("production")) is not None
            and entry.status is EnvironmentStatus.AWAITING_APPROVAL
            and r
        ),
        "the canary paused for a person",
    )

    # When the new version disappears while the canary waits, and a person promotes it: ShiftTraffic crashes
    version = paused.environments["production"].version_after
    service.stage.cloud.client("lambda").delete_function(FunctionName=service.function, Qualifier=version)
    decide(service.stage.cloud, deployment, environment="production", verdict="approve", reason="go")
    record = operations.wait(service.stage.cloud, deployment, timeout=240)

    # Then the crash took the rollback branch: alias on the old version at 100%, routing cleared
    assert record.status.value == "ROLLED_BACK"
    assert service.alias() == {"version": "1", "routing": {}}
    crashed = [e for e in record.events if e.stage == "ShiftTraffic" and e.status == "failed"]
    assert crashed  # (the state machine may retry a TrafficShiftError before it gives up and rolls back)
    assert {e.detail["error"] for e in crashed} == {"TrafficShiftError"}
    rollback = record.environments["production"].rollback
    assert rollback["restored_version"] == "1"
    assert rollback["reason"].startswith("TrafficShiftError")
    notes = service.stage.notifications_naming(record.deployment_id)
    outcomes = [n for n in notes if "ROLLED_BACK" in n["subject"]]  # (beside the request to decide)
    assert len(outcomes) == 1
    assert "restored to version 1 (was 2) in " in outcomes[0]["message"]


# --- HTTP probe ------------------------------------------------------------------------------
class _Endpoint(BaseHTTPRequestHandler):
    """What serves the alias over HTTP in this test: overloaded."""

    def do_GET(self) -> None:
        body = b"overloaded"
        self.send_response(503)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: no request log on stderr
        pass


def test_an_http_probe_that_gets_an_error_rolls_the_canary_back(service: Service) -> None:
    # Given a canary judged by an HTTP probe of a real endpoint (on this machine) that answers 503
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        service.register({"type": "canary", "weight": 10, "bake_seconds": 60}, {"http": {"url": url}})

        # When a build is pushed
        outcome = service.deploy(EXAMPLES / "hello", "2.0.0", with_traffic=False)
    finally:
        server.shutdown()
        server.server_close()

    # Then the EvaluateHealth function's probe saw the 503: failed verdict, alias restored, on-call told why
    assert outcome.record.status.value == "ROLLED_BACK"
    assert [v["status"] for v in outcome.verdicts()] == ["fail"]
    assert "status 503, expected 200" in outcome.verdicts()[0]["reason"]
    assert outcome.alias == {"version": "1", "routing": {}}
    assert any("status 503, expected 200" in note["message"] for note in outcome.notifications)
