"""What the MLflow UI shows a person, seen in a real browser (headless Chromium).

    .venv/bin/python benchmarks/ui_screenshots.py [--store URI] [--out DIR] [--quick-sweep] [--lab]

Starts `mlflow ui` on the store (default: the repository's, as `make reproduce` left it; with
--quick-sweep a temporary store filled by a quick sweep of the shipped HaGRID sample), opens
the classical sweep's experiment as `ui-links` prints it and the leaderboard view, closes the
MLflow Assistant panel (it opens itself on a first visit and takes a third of the window),
expands the description, saves screenshots and prints what was on screen. Exit code 1 when a
page does not show what it should (description, leaderboard, the metric columns). With --lab,
also opens every notebook in JupyterLab and checks it starts the repository's python3 kernel.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gesturelab import config
from gesturelab.tracking.browser import Browser, find_chromium, free_port, wait_for_http

ASSISTANT_CLOSE = '[data-component-id="mlflow.assistant.chat_panel.close"]'
DESCRIPTION_EXPAND = '[data-component-id="mlflow.experiment.metadata_editor.expand_button"]'


def start_ui(store: str, port: int) -> subprocess.Popen:
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [str(mlflow), "ui", "--backend-store-uri", store, "--host", "127.0.0.1"]
        + ["--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # `mlflow ui` starts uvicorn by name: it must find the venv's bin/
        env={**os.environ, "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    wait_for_http(f"http://127.0.0.1:{port}/health", 90, process)
    return process


def quick_sweep(store: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "gesturelab", "sweep", "--quick", "--figures-dir"]
        + [str(Path(tempfile.mkdtemp()) / "figures")],
        env={**os.environ, "MLFLOW_TRACKING_URI": store},
        check=True,
        capture_output=True,
    )


def look(store: str, out: Path, experiment: str = config.STATIC_EXPERIMENT) -> dict:
    """Screenshots of the experiment page and its leaderboard view; what each page showed."""
    os.environ["MLFLOW_TRACKING_URI"] = store
    import train_with_mlflow as tracking

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    pages = {p["experiment"]: p for p in tracking.ui_pages(base)}
    if experiment not in pages:
        raise SystemExit(f"no runs of {experiment!r} in {store}: run a sweep first")
    seen = {}
    server = start_ui(store, port)
    try:
        with Browser() as browser:
            text = browser.open(pages[experiment]["url"], wait_for="matching runs", timeout=90)
            browser.settle(2)
            browser.click(ASSISTANT_CLOSE)
            browser.click(DESCRIPTION_EXPAND)
            browser.settle(2)
            text = browser.text()
            seen["experiment"] = {
                "url": pages[experiment]["url"],
                "screenshot": str(browser.screenshot(out / "mlflow_experiment.png")),
                "runs page": "matching runs" in text,
                "model-training view": "Model training" in text and "Overview" not in text,
                "description": f"{experiment}:" in text,
                "leaderboard table": "CV macro-F1" in text and "test macro-F1" in text,
            }
            view = pages[experiment]["leaderboard"]
            text = browser.open(view, wait_for="matching runs", timeout=90)
            browser.settle(3)
            browser.click(ASSISTANT_CLOSE)
            browser.settle(1)
            text = browser.text()
            seen["leaderboard view"] = {
                "url": view,
                "screenshot": str(browser.screenshot(out / "mlflow_leaderboard_view.png")),
                "saved view open": "leaderboard" in text,
                "sorted by val_f1_macro": "Sort: val_f1_macro" in text,
                "val_f1_macro column": "val_f1_macro" in text,
                "val_accuracy column": "val_accuracy" in text,
                "test_f1_macro column": "test_f1_macro" in text,
            }
    finally:
        server.terminate()
        server.wait(20)
    return seen


def start_lab(port: int, token: str, notebooks) -> subprocess.Popen:
    """JupyterLab on copies of ``notebooks`` in a temporary folder, with a fresh workspace:
    what it saves (metadata, outputs of a run) never touches the repository's sources, and
    nothing of an earlier session's open tabs comes back."""
    root = Path(tempfile.mkdtemp(prefix="gesturelab-lab-"))
    for notebook in notebooks:
        shutil.copy(notebook, root / Path(notebook).name)
    jupyter = Path(sys.executable).with_name("jupyter")
    server = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1"]
        + [f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
        + [f"--LabApp.workspaces_dir={root / '.workspaces'}"]
        # window.jupyterapp: lets this script press "Run All" the way a person would
        + ["--LabApp.expose_app_in_browser=True"]
        + (["--allow-root"] if os.geteuid() == 0 else []),  # containers often run as root
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_http(f"http://127.0.0.1:{port}/api/status?token={token}", 90, server)
    return server


def run_in_lab(notebook: str, out: Path, timeout: float = 1800) -> dict:
    """Run one notebook top to bottom in JupyterLab (Run All) and look at its progress bars.

    It runs with the parameters saved in the notebook, as a person pressing Run All would:
    notebook 02 then sweeps the full grid into the repository's store (the notebook itself is a
    temporary copy: its paths come from gesturelab.config, not from where it sits).
    """
    port, token = free_port(), "gesturelab-check"
    server = start_lab(port, token, [config.NOTEBOOKS_DIR / notebook])
    try:
        with Browser() as browser:
            url = f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}"
            browser.open(url, wait_for="Python 3 (ipykernel)", timeout=120)
            browser.settle(5)
            # not awaited: the command's promise settles only when every cell has run
            browser.evaluate("void window.jupyterapp.commands.execute('notebook:run-all-cells')")
            widgets, saved = 0, None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                time.sleep(5)
                # ipywidgets 8 draws tqdm's bar as an HBox holding a FloatProgress
                widgets = max(widgets, browser.evaluate(
                    "document.querySelectorAll('.jp-OutputArea .widget-hprogress').length"
                ))  # fmt: skip
                if widgets and not saved:
                    browser.evaluate(
                        "document.querySelector('.jp-OutputArea .widget-hprogress')"
                        ".scrollIntoView({block: 'center'})"
                    )
                    browser.settle(1)
                    saved = browser.screenshot(out / f"lab_run_{Path(notebook).stem}.png")
                busy = browser.evaluate(
                    "document.querySelectorAll('.jp-InputArea-prompt').length && "
                    "[...document.querySelectorAll('.jp-InputArea-prompt')]"
                    ".some(e => e.innerText.includes('*'))"
                )
                if not busy:
                    break
            text = browser.text()
            return {
                notebook: {
                    "url": url.replace(token, "<token>"),
                    "screenshot": str(saved or browser.screenshot(out / "lab_run.png")),
                    "progress bars drawn as widgets": widgets > 0,
                    "no IProgress fallback": "IProgress not found" not in text,
                    "no widget error": "Error displaying widget" not in text
                    and "Loading widget" not in text,
                    "no error output": "Traceback" not in text,
                }
            }
    finally:
        server.terminate()
        server.wait(20)


def look_at_lab(out: Path) -> dict:
    """Open every notebook in JupyterLab (headless) and see which kernel it gets."""
    port, token = free_port(), "gesturelab-check"
    server = start_lab(port, token, sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")))
    seen = {}
    try:
        with Browser() as browser:
            for notebook in sorted(config.NOTEBOOKS_DIR.glob("*.ipynb")):
                url = f"http://127.0.0.1:{port}/lab/tree/{notebook.name}?token={token}"
                # the status bar names the kernel once it is running
                text = browser.open(url, wait_for="Python 3 (ipykernel)", timeout=120)
                browser.settle(4)
                text = browser.text()
                seen[notebook.name] = {
                    "url": url.replace(token, "<token>"),
                    "screenshot": str(browser.screenshot(out / f"lab_{notebook.stem}.png")),
                    "kernel python3 (this .venv)": "Python 3 (ipykernel)" in text,
                    "no kernel chooser": "Select Kernel" not in text,
                    "no kernel error": "Kernel Error" not in text and "No Kernel" not in text,
                }
    finally:
        server.terminate()
        server.wait(20)
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="tracking URI (default: the repository's store)")
    parser.add_argument("--out", type=Path, default=config.SCRATCH_FIGURES_DIR / "ui")
    parser.add_argument("--quick-sweep", action="store_true", help="a temporary store instead")
    parser.add_argument("--lab", action="store_true", help="also open each notebook in JupyterLab")
    parser.add_argument(
        "--run-in-lab", metavar="NOTEBOOK", help="run this notebook in JupyterLab (Run All)"
    )
    args = parser.parse_args()
    if find_chromium() is None:
        print("no Chromium installed (apt-get install chromium): nothing to look at")
        return 2
    store = args.store or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{config.MLFLOW_DB}"
    if args.quick_sweep:
        store = f"sqlite:///{tempfile.mkdtemp(prefix='gesturelab-ui-')}/mlflow.db"
        quick_sweep(store)
    seen = look(store, args.out)
    if args.lab:
        seen.update(look_at_lab(args.out))
    if args.run_in_lab:
        seen.update(run_in_lab(args.run_in_lab, args.out))
    failed = []
    for page, checks in seen.items():
        print(f"{page}: {checks.pop('url')}\n  screenshot {checks.pop('screenshot')}")
        for check, ok in checks.items():
            print(f"  {'ok  ' if ok else 'MISS'} {check}")
            failed += [] if ok else [f"{page}: {check}"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
