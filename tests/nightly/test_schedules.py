"""The ready schedules in deploy/nightly/ parse and call the documented command, with overlap
protection each."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess

import yaml

from tests.nightly.conftest import REPO

DEPLOY = REPO / "deploy" / "nightly"
COMMAND = re.compile(r"sbbench nightly --suite studies/nightly(_gpu)?\.yaml")


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string((DEPLOY / name).read_text())
    return parser


def test_systemd_service_and_timer(tmp_path):
    service, timer = unit("sbbench-nightly.service"), unit("sbbench-nightly.timer")
    assert service["Service"]["Type"] == "oneshot"
    exec_start = service["Service"]["ExecStart"]
    assert COMMAND.search(exec_start)
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "sbbench-nightly.service" and timer["Timer"]["OnCalendar"]
    if shutil.which("systemd-analyze") is None:
        return
    # Verify a copy whose program exists here (systemd checks that ExecStart is executable).
    stub = tmp_path / "sbbench"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    text = (DEPLOY / "sbbench-nightly.service").read_text()
    text = text.replace(exec_start.split()[0], str(stub))
    text = re.sub(r"^WorkingDirectory=.*$", f"WorkingDirectory={tmp_path}", text, flags=re.M)
    text = re.sub(r"^User=.*$", "", text, flags=re.M)
    (tmp_path / "sbbench-nightly.service").write_text(text)
    shutil.copy(DEPLOY / "sbbench-nightly.timer", tmp_path)
    result = subprocess.run(["systemd-analyze", "verify",
                             str(tmp_path / "sbbench-nightly.timer"),
                             str(tmp_path / "sbbench-nightly.service")],
                            capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "sbbench-nightly" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr


def test_cron_line_uses_flock():
    lines = [l for l in (DEPLOY / "crontab").read_text().splitlines()
             if l.strip() and not l.startswith("#") and "=" not in l.split()[0]]
    assert len(lines) == 1
    fields = lines[0].split(None, 5)
    assert len(fields) == 6 and all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
    assert "flock -n" in fields[5] and COMMAND.search(fields[5])


def test_github_workflow_schedule_dispatch_concurrency_and_gpu_runner():
    workflow = yaml.safe_load((DEPLOY / "github-workflow.yml").read_text())
    triggers = workflow[True] if True in workflow else workflow["on"]   # YAML 1.1: on -> True
    assert triggers["schedule"][0]["cron"] and "workflow_dispatch" in triggers
    assert workflow["concurrency"]["cancel-in-progress"] is False
    jobs = workflow["jobs"]
    runs = {name: " ".join(step.get("run", "") for step in job["steps"])
            for name, job in jobs.items()}
    assert all("sbbench nightly" in text for text in runs.values())
    assert "studies/nightly_gpu.yaml" in runs["gpu"]
    assert "self-hosted" in jobs["gpu"]["runs-on"] and "gpu" in jobs["gpu"]["runs-on"]
    assert jobs["gpu"]["concurrency"]["group"]


def test_kubernetes_cronjob_forbids_overlap():
    cronjob = yaml.safe_load((DEPLOY / "kubernetes-cronjob.yaml").read_text())
    assert cronjob["kind"] == "CronJob" and cronjob["apiVersion"] == "batch/v1"
    spec = cronjob["spec"]
    assert spec["concurrencyPolicy"] == "Forbid" and len(spec["schedule"].split()) == 5
    container = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert COMMAND.search(" ".join(container["command"]))
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_slurm_scrontab_is_a_singleton():
    text = (DEPLOY / "scrontab").read_text()
    options = [l for l in text.splitlines() if l.startswith("#SCRON")]
    assert "#SCRON --dependency=singleton" in options
    assert any(o.startswith("#SCRON --job-name=") for o in options)
    (line,) = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    assert len(line.split(None, 5)) == 6 and COMMAND.search(line)


def test_readme_documents_the_command_and_the_schedules():
    readme = (REPO / "README.md").read_text()
    assert "## Nightly jobs" in readme and "sbbench nightly" in readme
    for name in ("sbbench-nightly.timer", "crontab", "github-workflow.yml",
                 "kubernetes-cronjob.yaml", "scrontab"):
        assert f"deploy/nightly/{name}" in readme


def test_mlproject_has_a_nightly_entry_point():
    project = yaml.safe_load((REPO / "MLproject").read_text())
    assert "sbbench nightly" in project["entry_points"]["nightly"]["command"]
