"""A cold start loads modules; it makes almost no garbage, yet the collector runs full passes over everything the
imports created, again and again as they go (measured: about a fifth of a handler's import).

A handler imports this module first (``from conveyor import coldstart``): in a Lambda environment (one that names
its function) collection pauses while the handler's modules load, and ``coldstart.loaded()``, the handler module's
last line, freezes what was loaded (``gc.freeze``: moved out of every later
collection, which then walks only what invocations create) and turns collection back on. Anywhere else (tests,
the CLI, the local cloud's own process) it does nothing.
"""

from __future__ import annotations

import gc
import os


def _pause() -> bool:
    """Stop collection while a Lambda function's modules load (nothing elsewhere); whether it did."""
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and gc.isenabled():
        gc.disable()
        return True
    return False


_PAUSED = _pause()


def loaded() -> None:
    """The handler's modules are loaded: keep them out of every later collection, and collect again (once)."""
    if _PAUSED and not gc.isenabled():
        gc.freeze()
        gc.enable()
