"""Headless Chromium, for PDF output and for looking at pages the way a reader's browser does.

Chromium is not a Python dependency: Debian's `chromium` package provides it. Without it,
PDF output fails with a message that says what to install.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from trials.errors import TrialsError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Flags that keep a headless run quiet and offline: no background services, no first-run.
HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
)


class ChromiumMissing(TrialsError):
    """PDF output was asked for on a machine without Chromium."""


def find_chromium() -> str | None:
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def html_to_pdf(html_file: Path, pdf_file: Path, timeout: float = 120) -> None:
    """Print an HTML file to an A4 PDF (the page's print CSS decides the layout)."""
    chromium = find_chromium()
    if chromium is None:
        raise ChromiumMissing(
            "--format pdf needs headless Chromium, which is not installed "
            "(Debian: apt-get install chromium); use --format html and print it from a browser"
        )
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [chromium, *HEADLESS_FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer",
             f"--print-to-pdf={pdf_file.resolve()}", html_file.resolve().as_uri()],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
    if done.returncode != 0 or not pdf_file.exists():
        raise TrialsError(f"Chromium could not print {html_file} to PDF (exit {done.returncode})")
