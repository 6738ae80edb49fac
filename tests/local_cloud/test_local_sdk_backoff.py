"""Under a time scale, a local Lambda worker's SDK retry backoff is scaled like every other wait of the local cloud.

botocore's standard retry mode sleeps between attempts in real time, inside the function; the local cloud scales
Wait states, state machine retries and Lambda's own retries, so without this a function retrying through an
injected outage waited out what the rest of the cloud had scaled away. The worker scales
``botocore.retries.standard.ExponentialBackoff.delay_amount`` when botocore imports it: this is the seam.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_DELAY = """
from conveyor_local.worker import scale_sdk_backoff
scale_sdk_backoff({"CONVEYOR_LOCAL_TIME_SCALE": "%s"})
import sys
assert "botocore.retries.standard" not in sys.modules
from botocore.retries import standard
backoff = standard.ExponentialBackoff(random=lambda: 1.0)
print(backoff.delay_amount(standard.RetryContext(attempt_number=3)))
"""


def _delay(scale: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _DELAY % scale], capture_output=True, text=True, check=True, timeout=60, env=os.environ
    )
    return float(result.stdout.strip())


@pytest.mark.parametrize(("scale", "ratio"), [("0.01", 0.01), ("0", 0.0), ("1", 1.0), ("not-a-number", 1.0)])
def test_the_sdk_backoff_is_scaled_by_the_time_scale(scale: str, ratio: float) -> None:
    unscaled = _delay("1")
    assert unscaled > 0
    assert _delay(scale) == pytest.approx(unscaled * ratio)


def test_the_worker_imports_nothing_for_it() -> None:
    # A function that never uses the SDK pays nothing: the worker imports botocore only when the function does.
    probe = (
        "import sys; from conveyor_local.worker import scale_sdk_backoff; "
        "scale_sdk_backoff({'CONVEYOR_LOCAL_TIME_SCALE': '0.01'}); print('botocore' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "False"
