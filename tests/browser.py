"""A page as headless Chromium renders it: ``render(path)`` returns the DOM after load, to query.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it in CI), driven with ``--dump-dom``:
no browser download, no driver. Without it, tests skip locally and fail in CI (``$CI`` set), so the
browser check can never silently vanish from the pipeline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"})


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element | str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            if isinstance(child, Element):
                yield from child.iter()

    def find_all(self, predicate: Callable[[Element], bool]) -> list[Element]:
        return [element for element in self.iter() if predicate(element)]

    def by_id(self, element_id: str) -> Element:
        (found,) = self.find_all(lambda e: e.attrs.get("id") == element_id)
        return found

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def browser() -> str:
    """The Chromium binary, or a skip (a failure in CI) naming what is missing."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    reason = f"headless Chromium is not installed (none of {', '.join(BROWSERS)} on PATH): apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; .ci/run installs it, so CI must have it")
    pytest.skip(reason)


def render(page: Path, *, timeout: float = 120) -> Element:
    """Load ``page`` in headless Chromium and return its DOM after load (scripts, had any run, included)."""
    with tempfile.TemporaryDirectory(prefix="conveyor-chromium-") as profile:
        completed = subprocess.run(
            [
                browser(),
                "--headless",
                "--no-sandbox",  # CI containers run as root, where Chromium's sandbox cannot start
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                f"--user-data-dir={profile}",
                "--dump-dom",
                page.resolve().as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert completed.returncode == 0, f"chromium exited {completed.returncode}: {completed.stderr[-2000:]}"
    assert "<html" in completed.stdout, f"chromium printed no DOM: {completed.stderr[-2000:]}"
    return parse(completed.stdout)
