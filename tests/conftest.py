"""Settings every test process needs before any of Conveyor's modules is imported.

This root conftest is loaded before pytest collects any test module, so Powertools' Metrics (built
when ``conveyor.observability`` is first imported, whichever test module imports it first) always
finds its namespace.
"""

import functools
import os
from collections.abc import Iterator

import botocore.loaders
import botocore.session
import pytest
from _pytest.nodeid import NodeId  # pytest 9.2's node id (see pytest_collection_finish)

os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ConveyorTests")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "conveyor")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every botocore session of the test process reads AWS's API models through one loader.

    Conveyor builds each client on a session of its own (``conveyor.aws.client``), and the tests clear
    those caches between tests as a fresh Lambda container would, so without this every test parses
    the same endpoint, partition and service JSON again: about half a second a client. The loader is a
    read-only cache of files shipped with botocore, so sharing it changes no client's behaviour.
    """
    with pytest.MonkeyPatch.context() as patch:
        # One loader per data path (``AWS_DATA_PATH``), as botocore would build for it.
        patch.setattr(botocore.session, "create_loader", functools.cache(botocore.loaders.create_loader))
        yield


#: The end-to-end modules run on two local clouds, so that two processes can share them out: the modules from
#: this one on (in file order) on the second cloud, those before it on the first. The modules of one cloud build
#: on each other (see below); this one needs nothing from those before it, and each half takes about as long.
SECOND_E2E_CLOUD_FROM = "tests/e2e/test_progressive_e2e.py"


def xdist_group(module: str) -> str:
    """The group a test module's tests run in: the module itself, or the end-to-end cloud it shares."""
    if not module.startswith("tests/e2e/"):
        return module
    return "e2e-2" if module >= SECOND_E2E_CLOUD_FROM else "e2e-1"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups (whichever registered first)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """How pytest-xdist (``--dist loadgroup``) shares the tests out: a module stays whole on one process, and
    the end-to-end modules of one cloud stay together on one process, in file order.

    The e2e modules of a cloud share one sample app whose live version only moves forward: each module pushes
    versions above the one before it (a lower push is refused as a downgrade), so they must run in collection
    order, which ``loadscope`` does not promise once a process takes work from the queue out of turn. Each
    group gets a cloud of its own (``tests/e2e/conftest.py``), also when one process runs both.
    """
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item.nodeid.split("::", 1)[0])))


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reports the collected node ids to the scheduler
def pytest_collection_finish(session: pytest.Session) -> None:
    """Make pytest-xdist's groups count under pytest 9.2.

    pytest-xdist 3.8 marks a test's group by appending ``@group`` to ``item._nodeid``, and its scheduler
    groups by that suffix of the node id the worker reports. pytest 9.2 reads a node id from ``item._id``
    (a ``NodeId``) and ignores ``_nodeid``: every test became a group of its own, modules and the e2e suite
    were split across processes, and the e2e modules' order (ever higher versions on one cloud) broke. The
    suffixed id is carried over to where pytest 9.2 reads it; ``test_xdist_groups_reach_the_scheduler``
    fails if the two libraries stop agreeing either way.
    """
    for item in session.items:
        grouped = item.__dict__.get("_nodeid")
        if isinstance(grouped, str) and "@" in grouped and "@" not in item.nodeid:
            item._id = NodeId.parse(grouped)  # type: ignore[attr-defined]
