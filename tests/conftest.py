"""Settings every test process needs before any of Conveyor's modules is imported.

This root conftest is loaded before pytest collects any test module, so Powertools' Metrics (built
when ``conveyor.observability`` is first imported, whichever test module imports it first) always
finds its namespace.
"""

import os

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ConveyorTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "conveyor")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
