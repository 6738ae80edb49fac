"""A handler's cold start: no garbage collection while its modules load, and what they loaded kept out of later
collections; outside a Lambda environment nothing changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

_PROBE = """
import gc
from conveyor import coldstart
paused = not gc.isenabled()
import conveyor.domain.contracts  # a module a handler loads
coldstart.loaded()
print(paused, gc.isenabled(), gc.get_freeze_count() > 0)
"""


def _run(**env: str) -> str:
    clean = {key: value for key, value in os.environ.items() if key != "AWS_LAMBDA_FUNCTION_NAME"}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env=clean | env, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AWS_LAMBDA_FUNCTION_NAME": "conveyor-RolloutFunction"}, "True True True"),
        ({}, "False True False"),
    ],
    ids=["in a Lambda function", "anywhere else"],
)
def test_collection_pauses_while_a_handler_loads_only_in_lambda(env: dict[str, str], expected: str) -> None:
    assert _run(**env) == expected


def test_every_handler_pauses_collection_first_and_resumes_it_last() -> None:
    for app in sorted((Path(__file__).parents[2] / "functions").glob("*/app.py")):
        lines = [line for line in app.read_text().splitlines() if line.startswith(("import ", "from "))]
        assert lines[0].startswith("from conveyor import coldstart"), app
        assert app.read_text().rstrip().splitlines()[-1].startswith("coldstart.loaded()"), app
