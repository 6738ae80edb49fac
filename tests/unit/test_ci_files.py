"""The CI examples (examples/ci/) say what the CLI really does, and requirements-cli.txt installs what it needs.

actionlint and the GitLab CI schema check the files' syntax (``make ci-lint``); these tests check what no linter
knows: every ``conveyor`` command they run exists (``report`` only behind a guard), the exit codes their comments
list are the CLI's, and the CLI's pins for CI jobs are the ones the project is tested with.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from conveyor_cli.main import build_parser
from conveyor_cli.sample import ROOT
from conveyor_cli.status import ExitCode

EXAMPLES = [
    ROOT / "examples/ci" / name for name in ("github/deploy.yml", "gitlab/.gitlab-ci.yml", "jenkins/Jenkinsfile")
]
REPORT_GUARD = "conveyor report --help > /dev/null 2>&1"


def _subcommands() -> set[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.dest == "command"]
    return set(commands.choices)  # type: ignore[arg-type]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_run_only_commands_the_cli_has(example: Path) -> None:
    used = set(re.findall(r"conveyor (?:--local )?([a-z]+)\b", example.read_text()))
    # `report` comes from another change; the examples call it only where they first asked whether it exists
    unknown = used - {"report"} - _subcommands()
    assert not unknown, f"{example.name}: runs commands the CLI does not have: {unknown}"
    if "report" in used and "report" not in _subcommands():
        assert REPORT_GUARD in example.read_text(), f"{example.name}: conveyor report is called unguarded"
    assert {"package", "push", "status", "summary"} <= used, (
        f"{example.name}: does not package, push, follow, summarise"
    )


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_examples_list_the_exit_codes_conveyor_status_has(example: Path) -> None:
    listed = re.findall(r"\b(\d{1,2}) ([A-Z_]{4,})\b", example.read_text())
    assert listed, f"{example.name} does not say which exit codes fail the job"
    for code, name in listed:
        assert ExitCode[name] == int(code), f"{example.name}: {code} {name}"


def _pins(path: Path) -> dict[str, str]:
    """``name -> version`` of a requirements file, following ``-r`` includes."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("-r "):
            pins |= _pins(path.parent / line.removeprefix("-r ").strip())
        elif line:
            name, version = line.split("==")
            pins[str(canonicalize_name(name))] = version
    return pins


CLI_PINS = _pins(ROOT / "requirements-cli.txt")
OPTIONAL = {
    "awscrt": "botocore uses the CRT when it is installed (aws-sam-cli brings it here)",
    "certifi": "botocore takes its CA bundle when installed, else its own",
    "pyopenssl": "urllib3's optional TLS backend, tried by botocore",
    "cryptography": "pyOpenSSL's, loaded only with it",
    "cffi": "cryptography's, loaded only with it",
    "setuptools": "its _distutils_hack .pth file loads in every interpreter of a venv",
}
"""Distributions this test process has that the CLI loads only because they are there (try: import ...)."""


def test_cli_requirements_pin_what_the_project_is_tested_with() -> None:
    dev = _pins(ROOT / "requirements-dev.txt")
    assert {name: dev.get(name) for name in CLI_PINS} == CLI_PINS


def test_cli_requirements_hold_everything_the_cli_imports() -> None:
    # Given a fresh interpreter that imports the CLI and every command module a CI job runs
    modules = ["conveyor_cli.main", "conveyor_cli.ci", "conveyor_cli.operations", "conveyor_cli.packaging"]
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, {', '.join(modules)}; import json; print(json.dumps(sorted(sys.modules)))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    # Then every third-party module it loaded comes from a distribution requirements-cli.txt pins
    owners = packages_distributions()
    needed = {
        str(canonicalize_name(dist))
        for module in json.loads(loaded)
        for dist in owners.get(module.split(".", 1)[0], [])
        if str(canonicalize_name(dist)) != "conveyor"
    }
    assert needed - set(CLI_PINS) - set(OPTIONAL) == set()
