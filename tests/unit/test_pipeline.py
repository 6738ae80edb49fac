import copy
from typing import Any

import pytest
import yaml
from conveyor.domain.errors import PipelineInvalidError
from conveyor.domain.pipeline import PipelineSpec

from tests.fakes import DEFAULT_SPEC

SOURCE = "s3://bucket/pipelines/hello.yaml"

VALID = """
app: hello
environments:
  - name: staging
    target: {function_name: hello-staging}
    strategy: {type: canary, weight: 10, bake_seconds: 300}
    health:
      synthetic: {payload: {ping: true}, expect: {status: ok}}
      alarms: [hello-staging-errors]
  - name: production
    target: {function_name: hello-prod, alias: live}
    strategy: {type: linear, step_percent: 25, interval_seconds: 60}
    health:
      alarms: [hello-prod-errors]
      on_inconclusive: pass
notifications: {on_success: true}
"""


def _spec(**env_changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DEFAULT_SPEC)
    spec["environments"][0].update(env_changes)
    return spec


def _load(document: Any) -> PipelineSpec:
    return PipelineSpec.from_yaml(yaml.safe_dump(document), SOURCE)


def test_valid_spec_from_yaml() -> None:
    # When a full spec is loaded
    spec = PipelineSpec.from_yaml(VALID, SOURCE)
    # Then environments keep their order and defaults are filled in
    assert [env.name for env in spec.environments] == ["staging", "production"]
    assert spec.environments[0].target.alias == "live"
    assert spec.environments[0].health.on_inconclusive == "fail"
    assert spec.environments[1].health.on_inconclusive == "pass"
    assert spec.notifications.on_success is True
    assert spec.environment("production").target.function_name == "hello-prod"


def test_default_strategy_is_all_at_once() -> None:
    spec = _spec()
    del spec["environments"][0]["strategy"]
    assert _load(spec).environments[0].strategy.type == "all_at_once"


def test_unknown_environment_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        PipelineSpec.from_yaml(VALID, SOURCE).environment("qa")


@pytest.mark.parametrize("raw", ["app: [unclosed", "environments:\n  - name: a\n   bad: indent"])
def test_invalid_yaml_is_rejected_naming_the_file(raw: str) -> None:
    with pytest.raises(PipelineInvalidError, match=rf"^{SOURCE}: not valid YAML"):
        PipelineSpec.from_yaml(raw, SOURCE)


@pytest.mark.parametrize("raw", ["", "- a\n- b", "just a string"])
def test_a_document_that_is_not_a_mapping_is_rejected(raw: str) -> None:
    with pytest.raises(PipelineInvalidError, match="expected a mapping at the top level"):
        PipelineSpec.from_yaml(raw, SOURCE)


def test_unknown_field_is_rejected_naming_it() -> None:
    # Given a typo in an environment's strategy
    spec = _spec(strategy={"type": "canary", "weight": 10, "bake_secnds": 60})
    # Then the error names the file and the exact field path
    with pytest.raises(PipelineInvalidError) as raised:
        _load(spec)
    assert str(raised.value).startswith(f"{SOURCE}: ")
    assert "environments.0.strategy.canary.bake_secnds: Extra inputs are not permitted" in str(raised.value)


def test_unknown_top_level_field_is_rejected_naming_it() -> None:
    with pytest.raises(PipelineInvalidError, match="approvers: Extra inputs are not permitted"):
        _load({**DEFAULT_SPEC, "approvers": ["alice"]})


def test_health_with_no_checks_is_rejected() -> None:
    with pytest.raises(PipelineInvalidError, match=r"environments\.0\.health: .*at least one check"):
        _load(_spec(health={"alarms": []}))


def test_duplicate_environment_names_are_rejected() -> None:
    spec = copy.deepcopy(DEFAULT_SPEC)
    second = copy.deepcopy(spec["environments"][0])
    second["target"]["function_name"] = "hello-other"
    spec["environments"].append(second)
    with pytest.raises(PipelineInvalidError, match=r"environment names must be unique, got \['staging', 'staging'\]"):
        _load(spec)


def test_two_environments_on_one_alias_are_rejected() -> None:
    spec = copy.deepcopy(DEFAULT_SPEC)
    second = copy.deepcopy(spec["environments"][0])
    second["name"] = "production"
    spec["environments"].append(second)
    with pytest.raises(PipelineInvalidError, match="both target function"):
        _load(spec)


@pytest.mark.parametrize(
    ("strategy", "field"),
    [
        ({"type": "canary", "weight": 100, "bake_seconds": 1}, "canary.weight"),
        ({"type": "linear", "step_percent": 0, "interval_seconds": 1}, "linear.step_percent"),
        ({"type": "blue_purple"}, "environments.0.strategy"),
    ],
)
def test_strategy_values_are_checked(strategy: dict[str, Any], field: str) -> None:
    with pytest.raises(PipelineInvalidError, match=field):
        _load(_spec(strategy=strategy))


def test_no_environments_is_rejected() -> None:
    with pytest.raises(PipelineInvalidError, match="environments: "):
        _load({**DEFAULT_SPEC, "environments": []})


def _weights(strategy: dict[str, Any]) -> list[tuple[int, int]]:
    env = _load(_spec(strategy=strategy)).environments[0]
    return [(step.weight, step.wait_seconds) for step in env.traffic_steps()]


def test_all_at_once_is_one_step_to_100() -> None:
    assert _weights({"type": "all_at_once", "bake_seconds": 30}) == [(100, 30)]


def test_canary_is_weight_then_100() -> None:
    assert _weights({"type": "canary", "weight": 10, "bake_seconds": 300, "final_bake_seconds": 60}) == [
        (10, 300),
        (100, 60),
    ]


def test_linear_steps_up_to_100() -> None:
    assert _weights({"type": "linear", "step_percent": 25, "interval_seconds": 60}) == [
        (25, 60),
        (50, 60),
        (75, 60),
        (100, 0),
    ]


def test_linear_with_uneven_step_ends_at_100() -> None:
    assert [w for w, _ in _weights({"type": "linear", "step_percent": 30, "interval_seconds": 5})] == [30, 60, 90, 100]
