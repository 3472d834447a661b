"""The widgets as a learner meets them: JupyterLab in a real (headless) browser.

Marked ``browser``. Needs Debian's Chromium and Playwright for Python; when either is missing the
test fails with the command that installs it (``make browser-deps``), it is not skipped.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import nbformat
import pytest
from labdriver import CHROMIUM, CHROMIUM_ARGS, browser_missing, lab_server, open_and_run_all
from nbexec import metrics_of, same_seed_differences

from mtrec_utils.core.record import load_metrics

REPO = Path(__file__).resolve().parent.parent
SCREENSHOTS = REPO / "outputs" / "screenshots"
pytestmark = pytest.mark.browser
# Notebook 04's watched run (section 6) is the one the interrupt stops early: its best epoch changes.
INTERRUPTED_RUN = frozenset({"ml_u1_best_epoch_joint"})
# The JupyterLab execution runs alongside the papermill one and may find the embedding cache in another
# state (texts encoded in other batches): float32 round-off, not a different computation (nbexec).
ROUND_OFF = 1e-4


def lab_metrics(folder: Path, name: str) -> dict:
    """The metrics that notebook ``name``, run in JupyterLab by :func:`notebook_in_lab`, recorded."""
    return load_metrics(folder / "outputs" / "metrics" / f"{Path(name).stem}.json")["metrics"]


def assert_same_as_papermill(folder: Path, name: str, ignore: frozenset[str] = frozenset()) -> None:
    """The JupyterLab execution is the notebook's second run with seed 0 (see tests/test_determinism.py):
    it records the metrics of the papermill execution that the notebook tests share, timings aside."""
    differ = same_seed_differences(metrics_of(name[:2]), lab_metrics(folder, name), ignore, ROUND_OFF)
    assert not differ, f"{len(differ)} metrics differ between papermill and JupyterLab with seed 0: {differ}"


def smoke_copy(name: str, folder: Path) -> Path:
    """Copy notebook ``name`` into ``folder`` with PROFILE="smoke" and a private OUTPUT_DIR."""
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source += f'\nPROFILE = "smoke"\nOUTPUT_DIR = "{folder / "outputs"}"'
    path = folder / name
    nbformat.write(nb, path)
    return path


def output_image(page, scope: str) -> str:
    """The ``src`` of the first image drawn inside the widget box matched by ``scope``."""
    img = page.locator(f"{scope} img").first
    img.wait_for(timeout=60_000)
    return img.get_attribute("src")


@pytest.fixture(scope="module")
def browser():
    why = browser_missing()
    if why:
        pytest.fail(why, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def notebook_in_lab(browser, folder: Path, name: str, wait: bool = True):
    """Notebook ``name`` at smoke in JupyterLab with "Run All Cells" done (or, ``wait=False``, started).

    Yields the page; a screenshot of it is kept as ``outputs/screenshots/<NN>_notebook.png``, also on failure.
    """
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    smoke_copy(name, folder)
    with lab_server(folder, folder / "jupyterlab.log") as (base, token):
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            open_and_run_all(page, f"{base}/lab/tree/{name}?token={token}", wait=wait)
            yield page
        finally:
            page.screenshot(path=str(SCREENSHOTS / f"{name[:2]}_notebook.png"))
            page.close()


def test_nb01_weight_slider_moves_the_point(browser, tmp_path):
    with notebook_in_lab(browser, tmp_path, "01_joint_loss_and_gradients.ipynb") as page:
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.scroll_into_view_if_needed()
        readout = page.locator(".widget-slider .widget-readout").first
        before_value, before_img = readout.inner_text(), output_image(page, ".widget-vbox")
        page.locator(".widget-vbox").first.screenshot(path=str(SCREENSHOTS / "01_slider_before.png"))
        box = handle.bounding_box()
        track = page.locator(".widget-slider .noUi-target").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(track["x"] + 0.9 * track["width"], box["y"] + box["height"] / 2, steps=10)
        page.mouse.up()
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel).innerText !== old",
            arg=[".widget-slider .widget-readout", before_value],
            timeout=30_000,
        )
        page.wait_for_function(
            "([sel, old]) => { const i = document.querySelector(sel); return i && i.src !== old; }",
            arg=[".widget-vbox img", before_img],
            timeout=60_000,
        )
        after_value = readout.inner_text()
        page.locator(".widget-vbox").first.screenshot(path=str(SCREENSHOTS / "01_slider_after.png"))
    assert float(after_value) > float(before_value) + 0.2, (before_value, after_value)
    assert_same_as_papermill(tmp_path, "01_joint_loss_and_gradients.ipynb")


def test_nb04_interrupt_stops_training_after_the_current_step(browser, tmp_path):
    """Run notebook 04 at smoke, press ■ (interrupt) while the watched run trains: it stops cleanly,
    restores the best epoch, and the notebook runs on to the end."""
    with notebook_in_lab(browser, tmp_path, "04_joint_training.ipynb", wait=False) as page:
        training = page.locator(".widget-html:has-text('press ■')").first
        training.wait_for(timeout=600_000)  # sections 1-5 run first
        training.scroll_into_view_if_needed()
        page.locator("[data-command='notebook:interrupt-kernel']").first.click()
        status = page.locator(".widget-html:has-text('stopped at step')").first
        status.wait_for(timeout=120_000)
        text = status.inner_text()
        page.locator(".widget-vbox:has(.widget-html)").first.screenshot(
            path=str(SCREENSHOTS / "04_stopped.png")
        )
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=300_000)
        tracebacks = page.locator(".jp-RenderedText:has-text('Traceback')").count()
    assert "the best epoch's weights were restored" in text, text
    assert tracebacks == 0, (
        f"{tracebacks} cell(s) failed after the interrupt: see outputs/screenshots/04_notebook.png"
    )
    assert_same_as_papermill(tmp_path, "04_joint_training.ipynb", ignore=INTERRUPTED_RUN)
