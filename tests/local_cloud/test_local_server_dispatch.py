"""moto's per-request dispatch answers are computed once, and stay moto's answers."""

from __future__ import annotations

import pytest

from conveyor_local.moto_patches import backends, registry


def test_moto_modules_are_listed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given moto's own listing, counted
    listings: list[int] = []
    moto_own = registry.resolve_dotted(backends.LIST_OF_MOTO_MODULES)
    monkeypatch.setitem(
        registry.ORIGINALS, backends.LIST_OF_MOTO_MODULES, lambda: listings.append(1) or list(moto_own())
    )
    backends._moto_modules.cache_clear()

    # When the dispatcher asks on every request
    answers = [list(backends.list_of_moto_modules()) for _ in range(5)]

    # Then moto's directory was listed once, and every answer is moto's
    assert len(listings) == 1
    assert answers == [list(moto_own())] * 5
    assert "awslambda" in answers[0]
    backends._moto_modules.cache_clear()


def test_method_names_are_moto_s_once_per_class(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.awslambda.responses import LambdaResponse

    # Given moto's own answer, counted
    asked: list[type] = []
    moto_own = registry.resolve_dotted(backends.METHOD_NAMES_FROM_CLASS)
    monkeypatch.setitem(
        registry.ORIGINALS, backends.METHOD_NAMES_FROM_CLASS, lambda clazz: asked.append(clazz) or moto_own(clazz)
    )
    backends._method_names.cache_clear()

    # When every request of a class asks
    answers = [backends.method_names_from_class(LambdaResponse) for _ in range(3)]

    # Then moto was asked once, and each caller gets moto's answer in a list of its own
    assert asked == [LambdaResponse]
    assert answers == [moto_own(LambdaResponse)] * 3
    assert answers[0] is not answers[1]
    backends._method_names.cache_clear()
