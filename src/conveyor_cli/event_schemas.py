"""Write the JSON Schemas of Conveyor's lifecycle events to ``docs/events/`` (``python -m conveyor_cli.event_schemas``).

The models in ``conveyor.domain.events`` are the source; ``tests/unit/test_lifecycle_events.py`` fails while the
committed files differ from them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conveyor.domain.events import schemas

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "events"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every event's schema (stale files of events that no longer exist are removed); the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = schemas()
    for stale in directory.glob("*.json"):
        if stale.name not in wanted:
            stale.unlink()
    written = []
    for name, schema in wanted.items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path, file=sys.stderr)
