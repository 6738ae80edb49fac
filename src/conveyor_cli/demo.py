"""``conveyor demo``: the whole story, offline, start to finish.

Starts the local cloud from template.yaml, creates the sample app's targets, registers its
pipeline, then pushes a good build (live in staging and production) and a broken one (fails
its health check in staging and is rolled back, with a notification saying why). Then it
switches to progressive delivery with traffic on both aliases: a good build goes through a
staging canary and a production linear rollout, and a build that fails only under real traffic
is caught by the canary's per-version error rate and rolled back within one interval. Then one release of
two functions (an API and its worker from one package) moves both aliases together, and a release whose
worker cannot start rolls both back. Last, a web app
on Elastic Beanstalk: a good release is deployed to the idle environment and swapped in by CNAME, and
one that refuses the production host is swapped back during the bake. Exits 0 only if the story
happened as told.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.domain.manifest import FunctionConfig
from conveyor.domain.records import DeploymentRecord

from conveyor_cli import operations
from conveyor_cli.context import Cloud
from conveyor_cli.packaging import build_bundle
from conveyor_cli.sample import EXAMPLES, ROOT, SampleTargets, alias_versions, drain_inbox, set_up_sample
from conveyor_cli.status import render_environments, render_event, render_header
from conveyor_cli.traffic import for_environment
from conveyor_local.server import start_background, stop

DEMO_STATE = ROOT / ".conveyor" / "demo"
DEMO_RPS = 20


@dataclass
class Story:
    failures: list[str] = field(default_factory=list)

    def expect(self, condition: bool, what: str) -> None:
        print(f"  {'ok ' if condition else 'NOT'} {what}")
        if not condition:
            self.failures.append(what)


def _say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def _deploy(cloud: Cloud, targets: SampleTargets, source: Path, version: str, workdir: Path) -> tuple[str, dict, dict]:
    record, before, after = _push_and_follow(cloud, targets, source, version, workdir)
    return record.status.value, before, after


def _follow(cloud: Cloud, bundle: Path) -> DeploymentRecord:
    """Push ``bundle`` and follow its deployment to the end, printing each stage as it happens and the outcome."""
    pushed = operations.push(cloud, bundle)
    print(f"  pushed {pushed['s3_uri']} -> deployment {pushed['deployment_id']}")
    record = operations.wait(
        cloud,
        pushed["deployment_id"],
        timeout=180,
        on_event=lambda event, origin: print(render_event(event, origin), flush=True),
    )
    print(render_header(record))
    for line in render_environments(record):
        print(line)
    return record


def _show_notifications(notes: list[dict[str, str]]) -> None:
    _say("The notification the on-call received")
    for note in notes:
        print(f"  Subject: {note['subject']}")
        print("\n".join(f"  | {line}" for line in note["message"].splitlines()))


def _push_and_follow(
    cloud: Cloud, targets: SampleTargets, source: Path, version: str, workdir: Path
) -> tuple[DeploymentRecord, dict, dict]:
    config = FunctionConfig(environment={"RELEASE": version})
    bundle, _ = build_bundle(source, app="hello", version=version, function_config=config)
    path = workdir / f"hello-{version}.zip"
    path.write_bytes(bundle)
    before = alias_versions(cloud, targets.functions)
    record = _follow(cloud, path)
    after = alias_versions(cloud, targets.functions)
    for env in targets.functions:
        print(
            f"  alias {targets.functions[env]}:live  before v{before[env]['version']}  after v{after[env]['version']}"
        )
    return record, before, after


def _progressive_story(cloud: Cloud, targets: SampleTargets, workdir: Path, story: Story) -> None:
    """A linear rollout that succeeds, then a canary that catches a build whose errors only real traffic shows."""
    _say("Switching hello to progressive delivery: a canary in staging, a linear rollout in production")
    spec = operations.apply_pipeline(cloud, EXAMPLES / "pipelines" / "hello-progressive.yaml")
    for env in spec.environments:
        steps = ", ".join(f"{step.weight}%" for step in env.traffic_steps())
        print(f"  {env.name}: {env.strategy.type}, steps {steps}")
    print(f"  traffic: `conveyor local traffic hello <env> --rps {DEMO_RPS}` on both aliases, in the background")
    generators = [
        for_environment(cloud, "hello", env, rps=DEMO_RPS, duration_seconds=180).start() for env in targets.functions
    ]
    try:
        time.sleep(1)  # the old versions' baseline
        good = "1.3.0"
        _say(f"Pushing a good build, hello {good}: canary 20% in staging, then 25% steps in production")
        record, before, after = _push_and_follow(cloud, targets, EXAMPLES / "hello", good, workdir)
        story.expect(record.status.value == "SUCCEEDED", "the progressive rollout SUCCEEDED")
        shifts = [e.detail.get("weight") for e in record.events if e.stage == "ShiftTraffic" and e.status != "failed"]
        story.expect(
            shifts == [20, 100, 25, 50, 75, 100], f"traffic moved 20 -> 100 then 25 -> 50 -> 75 -> 100 ({shifts})"
        )
        passed = [e for e in record.events if e.stage == "EvaluateHealth" and e.status == "pass"]
        story.expect(len(passed) == len(shifts), "every step was judged on real traffic and passed")
        story.expect(
            all(not after[env]["routing"] and after[env]["version"] != before[env]["version"] for env in after),
            "both aliases serve the new version at 100%",
        )
        story.expect(not drain_inbox(cloud, targets.inbox_url), "no failure notification")

        flaky = "1.4.0"
        _say(f"Pushing hello {flaky}: its health probe is fine, but 3 in 10 real requests fail")
        record, before, after = _push_and_follow(cloud, targets, EXAMPLES / "hello-flaky", flaky, workdir)
        story.expect(record.status.value == "ROLLED_BACK", "the canary caught it: ROLLED_BACK")
        judged = [e for e in record.events if e.stage == "EvaluateHealth" and e.status != "inconclusive"]
        story.expect(
            [(e.failed, e.detail.get("weight")) for e in judged] == [(True, 20)],
            "it failed at the canary's first conclusive verdict: rolled back at 20%, never promoted",
        )
        story.expect(
            after["staging"] == {"version": before["staging"]["version"], "routing": {}},
            f"staging alias serves v{before['staging']['version']} at 100% again, routing cleared",
        )
        story.expect(after["production"] == before["production"], "production was never touched")
        notes = drain_inbox(cloud, targets.inbox_url)
        _show_notifications(notes)
        message = notes[0]["message"] if notes else ""
        story.expect(
            len(notes) == 1 and "errors " in message and "limit 1%" in message and " ms, routing cleared" in message,
            "one notification with the measured error rates, the limit and how long the rollback took",
        )
    finally:
        summaries = [generator.stop() for generator in generators]
    _say("What the traffic generator saw (invocations / errors per version)")
    for summary in summaries:
        served = ", ".join(
            f"v{version}: {counts['invocations']}/{counts['errors']}"
            for version, counts in summary.as_dict()["versions"].items()
        )
        print(f"  {summary.function_name}:{summary.alias}  {served}")


def _beanstalk_story(cloud: Cloud, targets: SampleTargets, workdir: Path, story: Story) -> None:
    """Blue/green on Elastic Beanstalk: a good release swapped in by CNAME, a broken one swapped back."""
    from conveyor_cli.beanstalk_sample import fetch, serving, set_up_webapp, webapp_bundle

    _say("A web app on Elastic Beanstalk, blue/green (`conveyor local sample --webapp`)")
    setup = set_up_webapp(cloud)
    print(f"  production: http://{setup.cname}/ served by webapp-blue; webapp-green is the idle environment")
    print(f"  (locally: curl -H 'Host: {setup.cname}' {cloud.beanstalk_front}/)")
    for source, version, expected in (("webapp", "1.1.0", "SUCCEEDED"), ("webapp-broken", "1.2.0", "ROLLED_BACK")):
        what = "a good release" if expected == "SUCCEEDED" else "a release that refuses the production host"
        _say(f"Pushing {what}, webapp {version}")
        record = _follow(cloud, webapp_bundle(EXAMPLES / source, version, workdir))
        story.expect(record.status.value == expected, f"webapp {version}: {expected}")
        status, body = fetch(cloud, setup.cname)
        served = body.get("release") if isinstance(body, dict) else None
        print(f"  GET http://{setup.cname}/ -> {status} {body}")
        story.expect(served == "1.1.0", "production serves 1.1.0 from webapp-green")
        story.expect(serving(cloud, "webapp-green")["cname"] == setup.cname, "webapp-green holds the production CNAME")
    notes = [note for note in drain_inbox(cloud, targets.inbox_url) if "webapp" in note["subject"]]
    _show_notifications(notes)
    story.expect(
        any("CNAME webapp-prod swapped back to webapp-green" in note["message"] for note in notes),
        "it says the production CNAME was swapped back",
    )


def _orders_story(cloud: Cloud, targets: SampleTargets, workdir: Path, story: Story) -> None:
    """One release of two functions: both move together, and a broken worker rolls both back."""
    from conveyor_cli.orders_sample import FUNCTIONS, orders_bundle, set_up_orders

    _say(
        "One package, two functions: the orders API and its worker released together (`conveyor local sample --orders`)"
    )
    set_up_orders(cloud)
    functions = {name: name for name in FUNCTIONS}
    for source, version, expected in (("orders", "1.1.0", "SUCCEEDED"), ("orders-broken", "1.2.0", "ROLLED_BACK")):
        what = "a good release" if expected == "SUCCEEDED" else "a release whose worker cannot start"
        _say(f"Pushing {what}, orders {version}: a 25% canary on both aliases, then 100%")
        before = alias_versions(cloud, functions)
        record = _follow(cloud, orders_bundle(EXAMPLES / source, version, workdir))
        after = alias_versions(cloud, functions)
        for function in functions:
            print(
                f"  alias {function}:live  before v{before[function]['version']}  after v{after[function]['version']}"
            )
        story.expect(record.status.value == expected, f"orders {version}: {expected}")
        shifts = [e.detail.get("weight") for e in record.events if e.stage == "ShiftTraffic" and not e.failed]
        if expected == "SUCCEEDED":
            story.expect(shifts == [25, 100], f"both aliases moved 25% -> 100% together ({shifts})")
            story.expect(
                all(after[f]["version"] != before[f]["version"] and not after[f]["routing"] for f in functions),
                "both functions serve their new version at 100%",
            )
        else:
            story.expect(after == before, "both aliases serve the versions of orders 1.1.0 again, routing cleared")
    notes = [note for note in drain_inbox(cloud, targets.inbox_url) if "orders" in note["subject"]]
    _show_notifications(notes)
    message = notes[0]["message"] if len(notes) == 1 else ""
    story.expect(
        "FULFILMENT_QUEUE_URL" in message and "and orders-worker:live restored" in message,
        "one notification naming the worker's failure and both functions restored",
    )


def run_demo(*, keep_running: bool = False) -> int:
    story = Story()
    started = time.monotonic()
    _say("Starting the local cloud (moto + Conveyor's adapter) from template.yaml")
    stop(DEMO_STATE)  # a cloud left running by `demo --keep-running` holds an earlier story: start afresh
    state = start_background(port=0, template=ROOT / "template.yaml", state_dir=DEMO_STATE, time_scale=0.01, fresh=True)
    print(f"  endpoint {state['endpoint']}; state machine {state['outputs']['StateMachineArn']}")
    try:
        cloud = Cloud(local=True, local_state=DEMO_STATE)
        _say("Creating the sample app's targets and registering its pipeline (`conveyor local sample`)")
        setup = set_up_sample(cloud)
        targets = setup.targets
        drain_inbox(cloud, targets.inbox_url)
        for resource in setup.created:
            print(f"  created {resource}")
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            version = "1.1.0"
            _say(f"Pushing a good build, hello {version}")
            outcome, before, after = _deploy(cloud, targets, EXAMPLES / "hello", version, workdir)
            story.expect(outcome == "SUCCEEDED", "the good build SUCCEEDED")
            for env in targets.functions:
                story.expect(
                    after[env]["version"] != before[env]["version"] and not after[env]["routing"],
                    f"{env} alias moved to the new version at 100%",
                )
            notes = drain_inbox(cloud, targets.inbox_url)
            story.expect(not notes, "no failure notification for the good build")

            broken = "1.2.0"
            _say(f"Pushing a broken build, hello {broken} (its health probe reports the database down)")
            outcome, before, after = _deploy(cloud, targets, EXAMPLES / "hello-broken", broken, workdir)
            story.expect(outcome == "ROLLED_BACK", "the broken build was ROLLED_BACK")
            for env in targets.functions:
                story.expect(
                    after[env]["version"] == before[env]["version"] and not after[env]["routing"],
                    f"{env} alias serves v{before[env]['version']} again, routing cleared",
                )
            notes = drain_inbox(cloud, targets.inbox_url)
            _show_notifications(notes)
            story.expect(len(notes) == 1, "exactly one notification was sent")
            story.expect(
                bool(notes) and "ROLLED_BACK" in notes[0]["subject"] and "cannot reach database" in notes[0]["message"],
                "it names the outcome and the failed check's reason",
            )

            _progressive_story(cloud, targets, workdir, story)
            _orders_story(cloud, targets, workdir, story)
            _beanstalk_story(cloud, targets, workdir, story)
    finally:
        if not keep_running:
            stop(DEMO_STATE)
    _say(f"Story {'told' if not story.failures else 'NOT told'} in {time.monotonic() - started:.1f} s")
    for failure in story.failures:
        print(f"  missing: {failure}")
    return 0 if not story.failures else 1
