"""`make test` shares tests out with pytest-xdist's `--dist loadgroup`: each module whole on one process, and the
e2e modules of each of the suite's two clouds together on one process in file order (tests/conftest.py). pytest and
pytest-xdist must agree on where a test's group is written for that to hold; this fails if they stop agreeing."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.conftest import SECOND_E2E_CLOUD_FROM, xdist_group

ROOT = Path(__file__).resolve().parents[2]


def test_xdist_groups_reach_the_scheduler() -> None:
    # When two modules run on two processes, as `make test` runs them
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-v",
            "tests/unit/test_environment.py",
            "tests/unit/test_bundle.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    # Then each module ran whole on one process
    workers: dict[str, set[str]] = defaultdict(set)
    for worker, module in re.findall(r"^\[(gw\d+)\] .*?PASSED (tests/unit/\w+\.py)", result.stdout, re.MULTILINE):
        workers[module].add(worker)
    assert set(workers) == {"tests/unit/test_environment.py", "tests/unit/test_bundle.py"}, result.stdout[-2000:]
    assert all(len(ran_on) == 1 for ran_on in workers.values()), dict(workers)


def test_the_e2e_modules_share_two_clouds() -> None:
    # The module the second cloud starts from exists (a rename would quietly move the split)
    modules = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "tests" / "e2e").glob("test_*.py"))
    assert SECOND_E2E_CLOUD_FROM in modules
    # And the modules before it share the first cloud, it and those after it the second, in file order
    groups = [xdist_group(module) for module in modules]
    split = modules.index(SECOND_E2E_CLOUD_FROM)
    assert groups == ["e2e-1"] * split + ["e2e-2"] * (len(modules) - split)
    assert xdist_group("tests/unit/test_bundle.py") == "tests/unit/test_bundle.py"
