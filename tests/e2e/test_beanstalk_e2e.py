"""Elastic Beanstalk blue/green, end to end on the local cloud: the real template, ASL and handlers, started by
an upload, moving a CNAME between two environments that really serve the web app.

Production is ``webapp-prod.<region>.elasticbeanstalk.com``, reached through the local cloud's HTTP front as a
browser would reach it on AWS. A good release is swapped in; a release that passes its verification on the
idle environment's own URL but refuses the production host is swapped back during the bake.
"""

from __future__ import annotations

import pytest
from conveyor.domain.environment import EnvironmentStatus
from conveyor.domain.outcome import Outcome
from conveyor.domain.target_identity import beanstalk_environment

from conveyor_cli import operations
from conveyor_cli.beanstalk_sample import fetch, production_cname, serving, set_up_webapp, webapp_bundle
from conveyor_cli.sample import EXAMPLES

from .conftest import Stage

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def webapp(stage: Stage) -> str:
    """``webapp-blue`` serving 1.0.0 on the production CNAME, the blue/green pipeline registered."""
    setup = set_up_webapp(stage.cloud)
    assert setup.cname == production_cname(stage.cloud)
    return setup.cname


def push(stage: Stage, source: str, version: str) -> str:
    bundle = webapp_bundle(EXAMPLES / source, version, stage.workdir)
    return str(operations.push(stage.cloud, bundle)["deployment_id"])


def test_a_good_release_is_swapped_in_and_a_broken_one_swapped_back(stage: Stage, webapp: str) -> None:
    # Given production serves 1.0.0 from webapp-blue
    assert fetch(stage.cloud, webapp) == (200, {"app": "webapp", "release": "1.0.0"})

    # When 1.1.0 is pushed
    good = push(stage, "webapp", "1.1.0")
    record = operations.wait(stage.cloud, good, timeout=120)

    # Then it was deployed to webapp-green, verified there, and the production CNAME now serves it
    assert record.status is Outcome.SUCCEEDED, record.failure
    assert fetch(stage.cloud, webapp) == (200, {"app": "webapp", "release": "1.1.0"})
    assert serving(stage.cloud, "webapp-green") == {"version": "1.1.0", "cname": webapp, "health": "Green"}
    assert serving(stage.cloud, "webapp-blue")["version"] == "1.0.0"  # kept, on the idle CNAME
    entry = record.environments["production"]
    assert entry.status is EnvironmentStatus.LIVE
    assert (entry.version_before, entry.version_after) == ("1.0.0", "1.1.0")
    assert (entry.model_extra or {})["beanstalk"]["deployed_environment"] == "webapp-green"

    # When 1.2.0, which refuses the production host, is pushed
    broken = push(stage, "webapp-broken", "1.2.0")
    record = operations.wait(stage.cloud, broken, timeout=120)

    # Then it passed on webapp-blue's own URL, was swapped in, failed on the production URL and was swapped back:
    # production serves 1.1.0 from webapp-green again, which was never changed
    assert record.status is Outcome.ROLLED_BACK
    verdicts = [e for e in record.events if e.stage == "EvaluateHealth"]
    assert [e.detail["weight"] for e in verdicts] == [0, 100]
    assert verdicts[0].status == "pass"
    assert verdicts[1].failed
    assert "answered 400, expected 200" in verdicts[1].detail["reason"]
    assert fetch(stage.cloud, webapp) == (200, {"app": "webapp", "release": "1.1.0"})
    assert serving(stage.cloud, "webapp-green") == {"version": "1.1.0", "cname": webapp, "health": "Green"}
    assert serving(stage.cloud, "webapp-blue")["version"] == "1.2.0"
    rollback = record.environments["production"].rollback or {}
    assert (rollback["restored_version"], rollback["rolled_back_from"]) == ("1.1.0", "1.2.0")

    # And the on-call is told it was rolled back, and why
    notes = stage.await_notifications(broken, "the rollback notice")
    assert any(
        "production: ROLLED BACK - production CNAME webapp-prod swapped back to webapp-green (version 1.1.0"
        in note["message"]
        for note in notes
    ), notes
    # And the lock of the target (the EB environment the spec names) is free
    lock = beanstalk_environment("webapp", "webapp-blue", stage.cloud.home()).arn
    state = operations.locks(stage.cloud).get(lock)
    assert state is not None  # it was taken, by these deployments
    assert state.holder is None
