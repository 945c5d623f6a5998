"""Refresh the README's pictures of the MLflow UI (docs/images/mlflow_ui_*.png).

Serves a copy of a sweep's tracking store with `mlflow server` on 127.0.0.1, opens the experiment
in headless Chromium (Debian's `chromium`, driven by Playwright) and clicks through the views the
README's "Compare in the MLflow UI" section describes:

  mlflow_ui_runs.png     the runs table, the sweep's parent expanded to show its child runs
  mlflow_ui_charts.png   the chart view, runs grouped by `sbbench.method`, val_error against step
                         (examples seen)
  mlflow_ui_compare.png  the compare view of one run per method (seed 0)
  mlflow_ui_note.png     the parent run's page: its description (the verdict) and metrics

Usage (pip install -e '.[screenshots]'; apt-get install -y chromium):

  python scripts/ui_screenshots.py                       # runs the default sweep in a temp dir
  python scripts/ui_screenshots.py --store sqlite:///path/to/mlflow.db   # reuse a finished one

The store is copied before it is served (the original is never written). Its artifacts are
read where the sweep wrote them (the paths the store records).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-dev-shm-usage"]
SETTLE_MS = 3000
ML_VIEW = "workflowType=machine_learning"  # MLflow 3.17's model-training view (not GenAI)
VIEWPORT = {"width": 1600, "height": 900}
TIMEOUT_MS = 180_000  # a busy machine: the first render parses ~10 MB of JavaScript


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_default_sweep(folder: Path, study: Path, experiment: str) -> str:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    print(f"running the sweep {study} in {folder} (minutes) ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "sbbench.cli", "sweep", "--study", str(study),
                    "--tracking-uri", uri, "--experiment", experiment, "--no-progress"],
                   cwd=folder, check=True)
    return uri


def _copy_store(uri: str, folder: Path) -> Path:
    if not uri.startswith("sqlite:///"):
        sys.exit(f"--store must be a sqlite:/// URI, got {uri!r}")
    source = Path(uri[len("sqlite:///"):])
    if not source.is_file():
        sys.exit(f"no tracking store at {source}")
    copy = folder / "served.db"
    shutil.copyfile(source, copy)
    return copy


def _start_server(db: Path, folder: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "wb")  # noqa: SIM115 (closed with the process)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    # No background job runner (MLflow's GenAI scorers): seven processes the UI does not need.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1", "--backend-store-uri", f"sqlite:///{db}",
         "--artifacts-destination", str(folder / "artifacts")],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return process, url
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                _stop_server(process)
                sys.exit("mlflow server did not start:\n"
                         + (folder / "server.log").read_text(errors="replace")[-3000:])
            time.sleep(0.3)


def _stop_server(process: subprocess.Popen) -> None:
    """The whole process group: uvicorn's workers too."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group
    except ProcessLookupError:
        pass
    process.wait(timeout=20)


def _sweep_runs(url: str, experiment: str, study: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        sys.exit(f"no experiment {experiment!r} in the store")
    runs = client.search_runs([found.experiment_id], max_results=5000)
    parents = [r for r in runs if r.info.run_name == f"sweep {study}"
               and r.data.tags.get("sbbench.kind") == "sweep"]
    if not parents:
        sys.exit(f"no run named 'sweep {study}' in {experiment!r}")
    parent = max(parents, key=lambda r: r.info.start_time)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return found.experiment_id, parent, children


def _one_per_method(children) -> list:
    chosen = {}
    for run in sorted(children, key=lambda r: r.info.run_name or ""):
        method = run.data.tags.get("sbbench.method")
        if method and run.data.params.get("seed") == "0" and run.info.status == "FINISHED":
            chosen.setdefault(method, run)
    return list(chosen.values())


def _close_assistant(page) -> None:
    # MLflow 3.17's assistant panel opens beside the page; it is not part of sbbench's story.
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()


def take(url: str, experiment_id: str, parent, children, out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    parent_name = parent.info.run_name
    trials = [c for c in children if c.data.tags.get("sbbench.kind") != "analysis"]
    first_child = min(c.info.run_name for c in trials)
    experiment_page = f"{url}/#/experiments/{experiment_id}?{ML_VIEW}"
    written = []
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)

            # MLflow 3.17 opens an experiment in its GenAI view in a fresh browser: switch to
            # "Model training" as a user does (MLflow remembers the choice in the browser).
            page.goto(f"{url}/#/experiments/{experiment_id}")
            page.get_by_role("button", name="Model training", exact=True).click()
            parent_link = page.get_by_role("link", name=parent_name, exact=True)
            expect(parent_link).to_be_visible()

            # (a) The runs table with the parent expanded.
            page.goto(experiment_page)
            expect(parent_link).to_be_visible()
            _close_assistant(page)
            row = page.locator("[role=row]").filter(has=parent_link).first
            row.locator('button[data-component-id*="runnamecellrenderer"]').first.click()
            expect(page.get_by_role("link", name=first_child, exact=True)).to_be_visible()
            written.append(_shot(page, out / "mlflow_ui_runs.png"))

            # (b) Grouped by method, charts of val_error against step (examples seen).
            page.get_by_role("button", name="Group by").click()
            page.get_by_text("sbbench.method", exact=True).first.click()
            page.keyboard.press("Escape")
            methods = sorted({c.data.tags["sbbench.method"] for c in trials})
            expect(page.get_by_text(f"Group: {methods[0]}", exact=True)).to_be_visible()
            page.locator("label:has(input[name=runs-view-mode][value=CHART])").click()
            search = page.get_by_placeholder("Search metric charts")
            search.fill("val_error")
            expect(page.get_by_text("val_error", exact=True).first).to_be_visible()
            expect(page.locator(".js-plotly-plot").first).to_be_visible()
            _settle(page)
            written.append(_shot(page, out / "mlflow_ui_charts.png"))

            # (c) The compare view of one run per method.
            compared = _one_per_method(trials)
            ids = json.dumps([r.info.run_id for r in compared])
            page.goto(f"{url}/#/compare-runs?runs={ids}&experiments="
                      f"{json.dumps([experiment_id])}&{ML_VIEW}")
            for run in compared:
                expect(page.get_by_text(run.info.run_name, exact=True).first).to_be_visible()
            expect(page.get_by_text("val_error", exact=True).first).to_be_visible()
            _settle(page)
            written.append(_shot(page, out / "mlflow_ui_compare.png"))

            # (d) The parent's page: the description holds the verdict.
            page.goto(f"{url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}?{ML_VIEW}")
            expect(page.get_by_text("Description", exact=True).first).to_be_visible()
            _close_assistant(page)
            show_more = page.get_by_text("Show more", exact=True)
            if show_more.count():
                show_more.first.click()
            expect(page.get_by_text("Speedup = median time to target", exact=False).first
                   ).to_be_visible()
            _settle(page)
            written.append(_shot(page, out / "mlflow_ui_note.png"))
        finally:
            browser.close()
    return written


def _settle(page) -> None:
    """Let charts finish drawing (Plotly animates) before the picture."""
    page.wait_for_timeout(SETTLE_MS)


def _shot(page, path: Path) -> Path:
    page.screenshot(path=str(path))
    print(f"wrote {path}", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="sqlite:/// URI of a finished sweep's tracking store "
                        "(default: run the sweep in a temporary folder)")
    parser.add_argument("--study", default=str(REPO / "studies" / "smoke.yaml"),
                        help="study file (default: studies/smoke.yaml)")
    parser.add_argument("--experiment", default="sbbench", help="experiment (default: sbbench)")
    parser.add_argument("--out", default=str(REPO / "docs" / "images"),
                        help="folder for the PNGs (default: docs/images)")
    parser.add_argument("--chromium", default=os.environ.get("SBBENCH_CHROMIUM")
                        or shutil.which("chromium") or shutil.which("chromium-browser"),
                        help="Chromium executable (default: chromium on PATH)")
    args = parser.parse_args(argv)
    if not args.chromium:
        sys.exit("Chromium not found: apt-get install -y chromium (or --chromium PATH)")
    import yaml

    study_name = yaml.safe_load(Path(args.study).read_text())["name"]
    with tempfile.TemporaryDirectory(prefix="sbbench-screenshots-") as tmp:
        folder = Path(tmp)
        store = args.store or _run_default_sweep(folder, Path(args.study).resolve(),
                                                 args.experiment)
        db = _copy_store(store, folder)
        process, url = _start_server(db, folder)
        try:
            experiment_id, parent, children = _sweep_runs(url, args.experiment, study_name)
            take(url, experiment_id, parent, children, Path(args.out), args.chromium)
        finally:
            _stop_server(process)
    return 0


if __name__ == "__main__":
    sys.exit(main())
