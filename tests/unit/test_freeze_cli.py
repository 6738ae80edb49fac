"""``conveyor freeze`` / ``unfreeze`` (conveyor_cli.freezes): scopes, ``--until``, and the parser's wiring."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conveyor.domain.errors import FreezeInvalidError
from conveyor.domain.freeze import ALL_APPS

from conveyor_cli import freezes, operations
from conveyor_cli.context import CliError
from conveyor_cli.freezes import parse_until, scope_of
from conveyor_cli.main import parse

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_a_freeze_names_one_app_or_all_of_them() -> None:
    assert scope_of("hello", False) == "hello"
    assert scope_of(None, True) == ALL_APPS
    with pytest.raises(CliError, match="not both"):
        scope_of("hello", True)
    with pytest.raises(CliError, match="name an app"):
        scope_of(None, False)
    with pytest.raises(CliError, match="not an app name"):
        scope_of("Hello World", False)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW + timedelta(minutes=30)),
        ("2h", NOW + timedelta(hours=2)),
        ("1d", NOW + timedelta(days=1)),
        ("2026-12-24T18:00:00+01:00", datetime(2026, 12, 24, 17, 0, tzinfo=UTC)),
        (None, None),
    ],
)
def test_until_is_a_duration_or_an_instant_with_its_offset(text: str | None, expected: datetime | None) -> None:
    assert parse_until(text, NOW) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-12-24T18:00:00", "UTC offset"),
        ("tomorrow", "expected a duration"),
        ("2026-12-01T00:00:00Z", "not in the future"),
    ],
)
def test_an_until_that_cannot_be_kept_is_refused(text: str, message: str) -> None:
    with pytest.raises(FreezeInvalidError, match=message):
        parse_until(text, NOW)


def test_a_freeze_of_an_app_with_no_pipeline_is_refused_naming_the_registered_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a cloud where only hello and orders have a pipeline (the freeze store is never reached)
    monkeypatch.setattr(operations, "registered_apps", lambda cloud: ["hello", "orders"])
    monkeypatch.setattr(freezes, "freezes", lambda cloud: pytest.fail("a freeze of nothing was stored"))

    # When an operator freezes a mistyped app, Then it is refused: that emergency stop would stop nothing
    with pytest.raises(CliError) as refused:
        freezes.freeze(object(), "helo", reason="incident 9", until=None)  # type: ignore[arg-type]
    assert "no pipeline is registered for 'helo' (registered: hello, orders)" in str(refused.value)
    assert "--all" in str(refused.value)


def test_the_commands_are_wired() -> None:
    frozen = parse(["freeze", "hello", "--reason", "incident", "--until", "2h"])
    assert (frozen.app, frozen.all, frozen.reason, frozen.until) == ("hello", False, "incident", "2h")
    assert parse(["freeze", "--list", "--json"]).list
    assert parse(["unfreeze", "--all"]).all


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["freeze", "hello"], "--reason is required"),
        (["freeze", "hello", "--reason", "incident", "--until", "yesterday"], "expected a duration"),
        (["freeze", "--reason", "incident"], "name an app, or --all"),
        (["local", "traffic", "hello", "staging", "--rps", "-5"], "--rps: -5 is not more than 0"),
        (["local", "traffic", "hello", "staging", "--rps", "0"], "--rps: 0 is not more than 0"),
        (["local", "traffic", "hello", "staging", "--rps", "5", "--duration", "-1"], "--duration: -1 is not more"),
        (["status", "d-1", "--timeout", "-3"], "--timeout: -3 is less than 0"),
    ],
)
def test_arguments_that_cannot_work_exit_2_naming_them(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor_cli import main as cli

    monkeypatch.setattr(cli, "_cloud", lambda args: object())  # refused before any cloud is read
    try:
        code = cli.main(argv)
    except SystemExit as exited:  # argparse's own refusals
        code = exited.code  # type: ignore[assignment]
    assert code == 2
    assert said in capsys.readouterr().err


def test_the_list_of_an_app_is_its_own_freeze_and_the_one_of_every_app(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from conveyor.domain.freeze import OperatorFreeze

    from conveyor_cli import freezes
    from conveyor_cli import main as cli

    stops = [
        OperatorFreeze(scope=scope, reason="r", by="arn:aws:iam::123456789012:user/alice", at=NOW)
        for scope in ("billing", "hello", ALL_APPS)
    ]
    monkeypatch.setattr(cli, "_cloud", lambda args: object())
    monkeypatch.setattr(freezes, "active", lambda cloud: stops)
    assert cli.main(["freeze", "hello", "--list", "--json"]) == 0
    assert [stop["scope"] for stop in json.loads(capsys.readouterr().out)] == ["hello", ALL_APPS]
    # and --list with what only a new freeze takes is a usage error
    assert cli.main(["freeze", "--list", "--reason", "r"]) == 2
    assert "--list shows the freezes in force" in capsys.readouterr().err
