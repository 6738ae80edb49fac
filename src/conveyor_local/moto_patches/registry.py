"""The one registry of moto seams: every moto attribute the local cloud replaces or relies on.

Each service module of ``conveyor_local.moto_patches`` registers its own seams at import time:
``relies_on(name, parameters)`` for an attribute we only read or call, ``patches(name, parameters,
replacement)`` for one we replace. ``check_seams()`` verifies each still exists with the signature
we were written against (moto is pinned at 5.2.5), so a moto upgrade fails loudly here instead of
subtly at runtime. ``install()``/``uninstall()`` put the replacements in and take them out.

The running cloud's configuration (worker pool, time scale, fault plan) is kept here too, so every
service module reads one copy of it: ``configure()`` sets it, ``pool()``, ``time_scale()`` and
``faults()`` read it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conveyor_local.faults import FaultPlan
    from conveyor_local.workers import WorkerPool

#: dotted name -> the parameter names we rely on (``None``: not a callable, existence only).
SEAM_SIGNATURES: dict[str, tuple[str, ...] | None] = {}
#: dotted name -> what ``install`` puts in its place.
PATCHES: dict[str, Callable[..., Any] | object] = {}
#: dotted name -> moto's own attribute, while patched.
ORIGINALS: dict[str, Any] = {}
#: The running cloud's configuration: ``pool``, ``time_scale``, ``faults``.
STATE: dict[str, Any] = {}
#: Where the time scale is given to the server and to its Lambda workers (the stages read the same name:
#: ``conveyor.domain.time_scale.TIME_SCALE_ENV``).
TIME_SCALE_ENV = "CONVEYOR_LOCAL_TIME_SCALE"


class SeamMovedError(RuntimeError):
    """moto changed under us: a patched or relied-on attribute moved or changed shape."""


def relies_on(name: str, parameters: tuple[str, ...] | None = None) -> None:
    """Register a moto attribute we read or call but do not replace."""
    SEAM_SIGNATURES[name] = parameters


def patches(name: str, parameters: tuple[str, ...] | None, replacement: Callable[..., Any] | object) -> None:
    """Register a moto attribute we replace, with the parameters moto calls it with."""
    SEAM_SIGNATURES[name] = parameters
    PATCHES[name] = replacement


def resolve_dotted(name: str) -> Any:
    """Import the longest importable module prefix of ``name`` and walk the rest as attributes."""
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ImportError(name)


@functools.cache
def resolve_class(name: str) -> type:
    """``resolve_dotted`` once per name, for the classes a replacement checks or builds on every call (a class is
    never what a patch replaces, so the answer cannot change)."""
    resolved: type = resolve_dotted(name)
    return resolved


def original(name: str) -> Any:
    """moto's own attribute behind the patched ``name``."""
    return ORIGINALS[name]


def check_seams() -> list[str]:
    """One message per seam that no longer matches; empty when moto is as we expect."""
    problems = []
    for name, expected in SEAM_SIGNATURES.items():
        try:
            target = ORIGINALS.get(name) or resolve_dotted(name)
        except (ImportError, AttributeError) as exc:
            problems.append(f"moto seam {name} moved ({exc}); conveyor_local.moto_patches needs updating")
            continue
        if expected is None:
            continue
        actual = tuple(inspect.signature(target).parameters)
        if actual[: len(expected)] != expected:
            problems.append(
                f"moto seam {name} changed signature {actual} (expected {expected}); "
                "conveyor_local.moto_patches needs updating"
            )
    return problems


def install() -> None:
    """Replace every registered seam with its replacement (once; already patched seams are left alone)."""
    for name, replacement in PATCHES.items():
        if name in ORIGINALS:
            continue
        owner_name, _, attribute = name.rpartition(".")
        owner = resolve_dotted(owner_name)
        ORIGINALS[name] = getattr(owner, attribute)
        setattr(owner, attribute, replacement)


def uninstall() -> None:
    """Put moto's own attributes back."""
    for name, moto_own in list(ORIGINALS.items()):
        owner_name, _, attribute = name.rpartition(".")
        setattr(resolve_dotted(owner_name), attribute, moto_own)
        del ORIGINALS[name]


# ----------------------------------------------------------------- the running cloud

CONFIG_LOCK = threading.Lock()


def pool() -> WorkerPool:
    current: WorkerPool | None = STATE.get("pool")
    if current is None:
        raise RuntimeError("conveyor_local.moto_patches.apply() has not been called")
    return current


def time_scale() -> float:
    return float(STATE.get("time_scale", 1.0))


def faults() -> FaultPlan | None:
    plan: FaultPlan | None = STATE.get("faults")
    return plan
