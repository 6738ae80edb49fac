"""The orders worker with a bug: it reads the fulfilment queue's URL from a variable nobody sets.

The API function of the same build is fine; `make demo` pushes this build to show that a release of
several functions is judged across all of them, and that the worker's failure rolls both back.
"""

import os


def handler(event, context):
    queue = os.environ["FULFILMENT_QUEUE_URL"]  # the bug: the release never sets it
    return {"fulfilled": len(event.get("Records", [])), "queue": queue}
