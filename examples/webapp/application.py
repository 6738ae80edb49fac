"""A sample web app for Conveyor's Elastic Beanstalk target (EB's Python platform: ``application:application``).

``GET /`` names the release it serves (``release.txt`` beside this file, written by whoever builds the
bundle; ``dev`` without it); ``GET /health`` is the health check URL the pipeline probes. Standard library
only: EB's Python platform and the local cloud serve the same WSGI callable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RELEASE = (HERE / "release.txt").read_text().strip() if (HERE / "release.txt").exists() else "dev"


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        body = {"status": "ok", "release": RELEASE}
    elif path == "/":
        body = {"app": "webapp", "release": RELEASE}
    else:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [json.dumps({"error": f"no route {path}"}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
