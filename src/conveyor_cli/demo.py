"""``conveyor demo``: the whole story, offline, start to finish.

Starts the local cloud from template.yaml, creates the sample app's targets, registers its
pipeline, then pushes a good build (live in staging and production) and a broken one (fails
its health check in staging and is rolled back, with a notification saying why). Exits 0
only if the story happened as told.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from conveyor.manifest import FunctionConfig

from conveyor_cli import operations
from conveyor_cli.context import Cloud
from conveyor_cli.packaging import build_bundle
from conveyor_cli.sample import EXAMPLES, ROOT, SampleTargets, alias_versions, create_sample_targets, drain_inbox
from conveyor_cli.status import render_environments, render_event, render_header
from conveyor_local.server import start_background, stop

DEMO_STATE = ROOT / ".conveyor" / "demo"


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
    config = FunctionConfig(environment={"RELEASE": version})
    bundle, _ = build_bundle(source, app="hello", version=version, function_config=config)
    path = workdir / f"hello-{version}.zip"
    path.write_bytes(bundle)
    before = alias_versions(cloud, targets.functions)
    pushed = operations.push(cloud, path)
    print(f"  pushed {pushed['s3_uri']} -> deployment {pushed['deployment_id']}")
    record = operations.wait(
        cloud,
        pushed["deployment_id"],
        timeout=180,
        on_event=lambda event, origin: print(render_event(event, origin), flush=True),
    )
    after = alias_versions(cloud, targets.functions)
    print(render_header(record))
    for line in render_environments(record):
        print(line)
    for env in targets.functions:
        print(
            f"  alias {targets.functions[env]}:live  before v{before[env]['version']}  after v{after[env]['version']}"
        )
    return record.status.value, before, after


def run_demo(*, keep_running: bool = False) -> int:
    story = Story()
    started = time.monotonic()
    _say("Starting the local cloud (moto + Conveyor's adapter) from template.yaml")
    stop(DEMO_STATE)  # a cloud left running by `demo --keep-running` holds an earlier story: start afresh
    state = start_background(port=0, template=ROOT / "template.yaml", state_dir=DEMO_STATE, time_scale=0.01)
    print(f"  endpoint {state['endpoint']}; state machine {state['outputs']['StateMachineArn']}")
    try:
        cloud = Cloud(local=True, local_state=DEMO_STATE)
        _say("Creating the sample app's targets and registering its pipeline")
        targets = create_sample_targets(cloud)
        drain_inbox(cloud, targets.inbox_url)
        spec = operations.apply_pipeline(cloud, EXAMPLES / "pipelines" / "hello.yaml")
        print(f"  pipeline {spec.app}: {' -> '.join(env.name for env in spec.environments)}")
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
            _say("The notification the on-call received")
            for note in notes:
                print(f"  Subject: {note['subject']}")
                print("\n".join(f"  | {line}" for line in note["message"].splitlines()))
            story.expect(len(notes) == 1, "exactly one notification was sent")
            story.expect(
                bool(notes) and "ROLLED_BACK" in notes[0]["subject"] and "cannot reach database" in notes[0]["message"],
                "it names the outcome and the failed check's reason",
            )
    finally:
        if not keep_running:
            stop(DEMO_STATE)
    _say(f"Story {'told' if not story.failures else 'NOT told'} in {time.monotonic() - started:.1f} s")
    for failure in story.failures:
        print(f"  missing: {failure}")
    return 0 if not story.failures else 1
