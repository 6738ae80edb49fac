"""The moto internals the local cloud patches are still where, and shaped how, we expect."""

from __future__ import annotations

import inspect

import pytest

from conveyor_local import moto_patches
from conveyor_local.moto_patches import registry


def test_every_seam_exists_with_the_expected_signature() -> None:
    # Given moto as pinned in requirements-dev.txt
    # When every seam is checked
    problems = moto_patches.check_seams()

    # Then none moved or changed shape
    assert not problems, "\n".join(problems)


def test_a_moved_seam_is_reported_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a seam that does not exist in moto
    seams = {**moto_patches.SEAM_SIGNATURES, "moto.awslambda.models.LambdaFunction._run_in_docker": ("self",)}
    monkeypatch.setattr(registry, "SEAM_SIGNATURES", seams)

    # When the seams are checked
    problems = moto_patches.check_seams()

    # Then the message names it and says what to update
    assert len(problems) == 1
    assert "moto seam moto.awslambda.models.LambdaFunction._run_in_docker moved" in problems[0]
    assert "conveyor_local.moto_patches needs updating" in problems[0]


def test_a_changed_signature_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a seam whose parameters we expect differently
    seams = {**moto_patches.SEAM_SIGNATURES, "moto.events.models.Rule.send_to_targets": ("self", "event")}
    monkeypatch.setattr(registry, "SEAM_SIGNATURES", seams)

    # When the seams are checked
    problems = moto_patches.check_seams()

    # Then the signature mismatch is named
    assert len(problems) == 1
    assert problems[0].startswith("moto seam moto.events.models.Rule.send_to_targets changed signature")


def test_seams_lists_every_patched_attribute() -> None:
    assert set(moto_patches.PATCHES) <= set(moto_patches.SEAMS)


@pytest.mark.parametrize("seam", sorted(moto_patches.PATCHES))
def test_each_replacement_takes_the_arguments_moto_passes(seam: str) -> None:
    # Given a patched seam whose parameters we rely on
    expected = moto_patches.SEAM_SIGNATURES[seam]
    replacement = moto_patches.PATCHES[seam]
    if expected is None:
        pytest.skip(f"{seam} is replaced by an object, not called with arguments")

    # When moto calls the replacement as it calls the original (positionally and by keyword)
    signature = inspect.signature(replacement)  # type: ignore[arg-type]

    # Then both calls bind
    signature.bind(*expected)
    signature.bind(**dict.fromkeys(expected))


def test_every_moto_name_persistence_relies_on_is_a_registered_seam() -> None:
    from conveyor_local import persistence

    relied_on = {
        *persistence.BACKENDS.values(),
        persistence._EXECUTION,
        persistence._VERSIONED_KEY_STORE,
        "moto.core.base_backend.BackendDict.iter_backends",
        "moto.stepfunctions.parser.api.ExecutionStatus",
        "moto.moto_server.werkzeug_app.DomainDispatcherApplication",
        "moto.moto_server.werkzeug_app.create_backend_app",
        "moto.moto_server.werkzeug_app.MotoRequestHandler",
    }
    assert relied_on <= set(moto_patches.SEAMS)


def test_each_service_module_registers_its_own_seams() -> None:
    # Given the package, one module per service patched
    import importlib
    import pkgutil

    modules = [
        importlib.import_module(f"conveyor_local.moto_patches.{info.name}")
        for info in pkgutil.iter_modules(moto_patches.__path__)
        if info.name != "registry"
    ]

    # When the patched seams are grouped by the module whose replacement they hold
    owners = {
        getattr(replacement, "__module__", type(replacement).__module__)
        for replacement in moto_patches.PATCHES.values()
    }

    # Then every replacement lives in a service module of the package (or the executions emulation it installs)
    assert owners <= {module.__name__ for module in modules} | {"conveyor_local.executions"}
    assert {"conveyor_local.moto_patches.awslambda", "conveyor_local.moto_patches.stepfunctions"} <= owners
