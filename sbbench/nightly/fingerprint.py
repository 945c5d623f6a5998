"""What a series is bound to (the fingerprint) and what may change between nights (versions).

Fingerprint = suite file digest + device + CPU model + physical cores + logical CPUs. Library
versions and the commit are NOT in it: a new PyTorch or a new commit is exactly what a nightly
must compare against the history, not a reason to start a new series. They are recorded as tags
so a report can say what changed since the last good night.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib import metadata
from sbbench.record_names import (  # noqa: F401  (the record's names live there)
    TAG_FINGERPRINT, TAG_FINGERPRINT_DETAIL)

VERSION_TAGS = {  # what changed since the last good night: tag -> label
    "sbbench.git_commit": "commit",
    "sbbench.torch_version": "torch",
    "sbbench.cuda_version": "CUDA",
    "sbbench.driver_version": "driver",
    "sbbench.mlflow_version": "mlflow",
    "sbbench.optuna_version": "optuna",
    "sbbench.numpy_version": "numpy",
    "sbbench.python_version": "python",
}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(setting: str = "auto") -> str:
    """The device a suite's `device` setting resolves to, by name (GPU model for CUDA)."""
    try:
        import torch
    except ImportError:
        return "cpu"
    wants_cuda = setting.startswith("cuda") or (setting == "auto" and torch.cuda.is_available())
    if wants_cuda and torch.cuda.is_available():
        index = int(setting.split(":")[1]) if ":" in setting else 0
        return f"cuda:{torch.cuda.get_device_name(index)}"
    if setting == "mps":
        return "mps"
    return "cpu"


def machine(device_setting: str = "auto") -> dict[str, object]:
    import psutil

    return {"device": device_name(device_setting), "cpu_model": cpu_model(),
            "physical_cores": psutil.cpu_count(logical=False) or 0,
            "logical_cpus": os.cpu_count() or 0}


def fingerprint(suite_digest: str, machine_info: dict[str, object]) -> tuple[str, dict]:
    """(short hash, the detail it hashes)."""
    detail = {"suite_digest": suite_digest, **machine_info}
    text = json.dumps(detail, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12], detail


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _driver_version() -> str:
    try:
        import pynvml

        pynvml.nvmlInit()
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # no NVML, no GPU: ask nvidia-smi, else there is none
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version",
                                  "--format=csv,noheader"], capture_output=True, text=True,
                                 timeout=10)
            return out.stdout.strip().splitlines()[0] if out.returncode == 0 and \
                out.stdout.strip() else "none"
        except (OSError, subprocess.SubprocessError):
            return "none"


def versions() -> dict[str, str]:
    """Tags: commit and library versions of tonight."""
    from sbbench.tracking import git_commit

    try:
        import torch
        torch_version, cuda = torch.__version__, torch.version.cuda or "none"
    except ImportError:
        torch_version, cuda = "absent", "none"
    return {"sbbench.git_commit": git_commit(), "sbbench.torch_version": torch_version,
            "sbbench.cuda_version": cuda, "sbbench.driver_version": _driver_version(),
            "sbbench.mlflow_version": _version("mlflow"),
            "sbbench.optuna_version": _version("optuna"),
            "sbbench.numpy_version": _version("numpy"),
            "sbbench.python_version": platform.python_version()}


def changes(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """'torch 2.4.0 -> 2.5.1' for each version tag that differs."""
    out = []
    for tag, label in VERSION_TAGS.items():
        old, new = previous.get(tag), current.get(tag)
        if old is not None and new is not None and old != new:
            if tag == "sbbench.git_commit":
                old, new = old[:10], new[:10]
            out.append(f"{label} {old} -> {new}")
    return out
