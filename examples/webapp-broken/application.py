"""The sample web app with a bad release: it trusts only the hosts it was tested on.

``ALLOWED_HOSTS`` lists the two environments' own names but not the production CNAME, the classic slip of a
framework's host allow-list. Verified on the idle environment's own URL it answers 200, and Elastic Beanstalk's
own health check (which reaches the instance directly) stays Green; once the production CNAME points at it,
every request to it is refused with 400. A blue/green release of it is swapped in, judged on the production
URL during the bake, and swapped back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RELEASE = (HERE / "release.txt").read_text().strip() if (HERE / "release.txt").exists() else "dev"
ALLOWED_HOSTS = ("webapp-blue.", "webapp-green.", "localhost", "127.0.0.1")  # the bug: no webapp-prod.


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    host = environ.get("HTTP_HOST", "")
    if not host.startswith(ALLOWED_HOSTS):
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [json.dumps({"error": f"DisallowedHost: {host} is not in ALLOWED_HOSTS", "release": RELEASE}).encode()]
    path = environ.get("PATH_INFO", "/")
    body = {"status": "ok", "release": RELEASE} if path == "/health" else {"app": "webapp", "release": RELEASE}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
