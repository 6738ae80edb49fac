"""The sample web app with a bad release: it starts and serves ``/``, but its health check URL fails.

What a release with a broken dependency looks like from outside: Elastic Beanstalk marks the environment
Red (Severe) and Conveyor's HTTP probe of ``/health`` sees 500, so a blue/green release of it is swapped back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RELEASE = (HERE / "release.txt").read_text().strip() if (HERE / "release.txt").exists() else "dev"


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "/") == "/health":
        start_response("500 Internal Server Error", [("Content-Type", "application/json")])
        return [json.dumps({"status": "down", "release": RELEASE, "error": "database unreachable"}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"app": "webapp", "release": RELEASE}).encode()]
