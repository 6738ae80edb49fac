"""HTTP probes of the URL that serves an alias (urllib: no dependency beyond the standard library)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from conveyor.domain.ports import ProbeResponse

_MAX_BODY_BYTES = 64 * 1024


class UrllibProber:
    """``HttpProber`` with urllib; a non-2xx answer is a response (with its status), not an error."""

    def fetch(self, url: str, method: str, timeout_seconds: float) -> ProbeResponse:
        if not url.startswith(("http://", "https://")):
            return ProbeResponse(status=None, body="", latency_ms=0.0, error=f"unsupported URL scheme in {url!r}")
        request = urllib.request.Request(url, method=method, headers={"User-Agent": "conveyor-health-probe"})  # noqa: S310 - scheme checked above
        started = time.perf_counter()
        try:
            # Bandit B310 suppressed below: scheme checked above (http/https only); URL from the admin pipeline.
            with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310  # nosec B310
                body = response.read(_MAX_BODY_BYTES).decode(errors="replace")
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            body = exc.read(_MAX_BODY_BYTES).decode(errors="replace") if exc.fp else ""
            status = int(exc.code)
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            reason = getattr(exc, "reason", exc)
            return ProbeResponse(status=None, body="", latency_ms=round(elapsed, 1), error=str(reason))
        return ProbeResponse(status=status, body=body, latency_ms=round((time.perf_counter() - started) * 1000, 1))
