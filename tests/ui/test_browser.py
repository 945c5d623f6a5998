"""A real browser on a real `mlflow server` after a tiny sweep: the experiment page, rendered by
MLflow's JavaScript in headless Chromium, shows the model-training view with the study's parent
run.

MLflow 3.17 chooses between its GenAI and model-training views from the `workflowType` in the
page's URL, else from the browser's last choice (GenAI in a fresh browser); the experiment's
`mlflow.experimentKind` tag alone does not switch it. So the README's link carries
`?workflowType=machine_learning`, and this test opens that link."""

from __future__ import annotations

import urllib.request

import pytest
from mlflow import MlflowClient

from tests.ui.browser import CHROMIUM_ARGS, chromium_or_skip

# The session's tiny sweep (a server start and four trials) can land on this test.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]

PAGE_TIMEOUT_MS = 120_000  # one busy core: the first render fetches and parses ~10 MB of JS


@pytest.fixture(scope="session")  # the scope of served_sweep, so that it is set up first
def chromium() -> str:
    return chromium_or_skip()


# `chromium` first: without a browser the test skips before the sweep is run.
def test_experiment_page_renders_the_training_view_with_the_sweep_parent(chromium, served_sweep):
    from playwright.sync_api import expect, sync_playwright

    experiment = MlflowClient(tracking_uri=served_sweep.url).get_experiment_by_name(
        served_sweep.experiment)
    parent_name = f"sweep {served_sweep.study}"
    # The server's HTML is an empty shell: whatever the test finds was rendered by the browser.
    with urllib.request.urlopen(served_sweep.url, timeout=10) as response:
        assert parent_name not in response.read().decode()

    url = (f"{served_sweep.url}/#/experiments/{experiment.experiment_id}"
           "?workflowType=machine_learning")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True,
                                             args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            expect.set_options(timeout=PAGE_TIMEOUT_MS)
            page.goto(url)
            # The runs table, with the sweep's parent run (its children are folded under it).
            expect(page.get_by_text(parent_name, exact=True).first).to_be_visible()
            assert "/runs" in page.url  # MLflow sent the experiment page to its Runs tab
            # The model-training view's navigation (Runs, Models, Traces, Model registry), not
            # the GenAI one (Overview, Judges, Evaluation runs, Prompts, ...).
            navigation = page.get_by_role("navigation")
            expect(navigation.get_by_role("link", name="Model registry")).to_be_visible()
            expect(navigation.get_by_role("link", name="Runs", exact=True)).to_be_visible()
            for genai in ("Evaluation runs", "Judges", "Prompts"):
                expect(navigation.get_by_role("link", name=genai, exact=True)).to_have_count(0)
            assert served_sweep.experiment in page.inner_text("body")
        finally:
            browser.close()
