"""A real browser for tests: headless Chromium (Debian package `chromium`) at a phone's size.

Each call starts Chromium once with its own profile directory and a bounded run time.
Headless Chromium keeps its window at least 500 px wide whatever --window-size asks, so a
layout is measured at 375 px inside an iframe of that width (:func:`measuring_page`);
screenshots do honour the window size.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PHONE = (375, 812)
_RUN_TIMEOUT = 60.0


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("chromium not installed (scripts/test.sh installs the Debian package chromium)")


def _run(*args: str, height: int = PHONE[1]) -> subprocess.CompletedProcess[str]:
    width = PHONE[0]
    with tempfile.TemporaryDirectory(prefix="boxoffice-chromium-") as profile:
        argv = [
            chromium_binary(),
            "--headless=new",
            "--no-sandbox",  # tests run as root in CI
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            *args,
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=_RUN_TIMEOUT, check=False
        )
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def dump_dom(url: str) -> str:
    """The DOM once the page has loaded (its scripts, if any, have run)."""
    return _run("--virtual-time-budget=3000", "--dump-dom", url).stdout


def screenshot(url: str, path: Path, *, height: int = PHONE[1]) -> None:
    """A PNG of the page at the phone's width (and ``height``)."""
    _run("--hide-scrollbars", f"--screenshot={path}", url, height=height)
    assert path.exists() and path.stat().st_size > 0


def measuring_page(page: str) -> str:
    """A page showing ``page`` in a 375 px wide frame, then writing into its own DOM the
    frame's document width (``<output id="scroll-width">``): wider than 375 means the page
    scrolls sideways on a phone."""
    width, height = PHONE
    return f"""<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0">
<iframe id="page" style="width:{width}px;height:{height}px;border:0" srcdoc="{html.escape(page)}"></iframe>
<output id="scroll-width"></output><output id="client-width"></output>
<script>
document.getElementById("page").addEventListener("load", function () {{
  var doc = document.getElementById("page").contentDocument.documentElement;
  document.getElementById("scroll-width").textContent = String(doc.scrollWidth);
  document.getElementById("client-width").textContent = String(doc.clientWidth);
}});
</script>
</body></html>"""
