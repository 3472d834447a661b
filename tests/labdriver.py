"""Drive JupyterLab in headless Chromium (Debian's package) with Playwright, as a learner would.

``lab_server(folder)`` starts JupyterLab on a free loopback port with a random token and stops it
on exit, also when the test fails. ``open_and_run_all(page, url)`` opens a notebook, accepts a
kernel dialog if one appears, and runs every cell.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = os.environ.get("MTREC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_HINT = (
    "the browser test needs Debian's Chromium and Playwright for Python: run "
    "`sudo apt-get update && sudo apt-get install -y chromium` and `.venv/bin/pip install playwright` "
    "(`make browser-deps` does both where it can)"
)


def browser_missing() -> str | None:
    """Why the browser test cannot run here, with the command that fixes it; None when it can."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        return f"no Chromium at {CHROMIUM}; {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return f"Playwright for Python is not installed; {INSTALL_HINT}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def lab_server(folder: Path, log_path: Path) -> Iterator[tuple[str, str]]:
    """Run JupyterLab on ``folder``; yields ``(base_url, token)``; always stops the server."""
    port, token = free_port(), secrets.token_hex(16)
    server = {"ip": "127.0.0.1", "port": port, "token": token, "root_dir": folder, "open_browser": False}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root"]
    cmd += [f"--ServerApp.{name}={value}" for name, value in server.items()]
    cmd.append("--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate")
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"JupyterLab did not start; see {log_path}") from None
                time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def open_and_run_all(page, url: str, timeout_ms: int = 240_000, wait: bool = True) -> None:
    """Open a notebook at ``url``, accept a kernel dialog if shown, and run all its cells.

    With ``wait=False`` it returns as soon as the run has started (to interact while cells execute).
    """
    page.goto(url)
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    with contextlib.suppress(Exception):  # only shown when the notebook has no usable kernelspec
        page.locator("button.jp-mod-accept").click(timeout=3_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
    with contextlib.suppress(Exception):  # the "get Jupyter news?" toast would cover the outputs
        page.locator(".jp-toast-button", has_text="No").first.click(timeout=2_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.wait_for_timeout(1_000)
    if wait:
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout_ms)
