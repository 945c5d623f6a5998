"""The declared dependency floors are versions the code runs on (issue 12, point 5).

Not a check of the installed versions: each row below names an API the code calls, the first
release that has it, and why we need it; the floors declared in pyproject.toml must be at or
above every row, conda.yaml must declare the same floors, and nothing is capped from above
without a known break.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]

# (distribution, first version with the API, where the code needs it)
API_FLOORS = [
    ("scipy", "1.15", "stats.bootstrap(..., rng=) and stats.PermutationMethod(rng=) "
                      "(statistics.bootstrap_ci, median_ci, mann_whitney_less); 1.14 only "
                      "takes random_state"),
    ("scipy", "1.12", "stats.logrank (statistics.logrank_p)"),
    ("scipy", "1.11", "stats.ecdf, stats.CensoredData and ECDFResult.cdf.confidence_interval "
                      "(Kaplan-Meier curves and their bands)"),
    ("scipy", "1.7", "stats.binomtest(...).proportion_ci (success-rate CI)"),
    ("optuna", "4.0", "optuna.storages.journal.JournalFileBackend (sweep storage)"),
    ("seaborn", "0.13", "barplot(..., hue=, legend=False) (time-to-target bars)"),
    ("seaborn", "0.12", "lineplot(errorbar=('ci', 95)) (error-vs-time bands)"),
    ("numpy", "1.23.5", "the oldest numpy scipy 1.15 supports"),
]

# Caps we know a reason for (none today). A cap without a row here fails the test.
KNOWN_BREAKS: dict[str, str] = {}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text))


def _parse(requirements: list[str]) -> dict[str, str]:
    """{name: specifier} of PEP 508 strings such as 'scipy>=1.15'."""
    out = {}
    for req in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", req)
        if match and not req.startswith("-"):
            out[match.group(1).lower()] = match.group(2).strip()
    return out


def _floor(specifier: str) -> tuple[int, ...] | None:
    match = re.search(r">=\s*([0-9][0-9.]*)", specifier)
    return _version(match.group(1)) if match else None


@pytest.fixture(scope="module")
def declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return _parse(project["dependencies"])


@pytest.mark.parametrize("name, version, reason", API_FLOORS)
def test_declared_floor_has_the_api_the_code_calls(declared, name, version, reason):
    assert name in declared, f"{name} is used ({reason}) but not declared"
    floor = _floor(declared[name])
    assert floor is not None, f"{name} has no >= floor"
    assert floor >= _version(version), \
        f"{name}{declared[name]} allows versions without {reason} (needs >= {version})"


def test_no_upper_caps_without_a_known_break(declared):
    capped = {name: spec for name, spec in declared.items()
              if re.search(r"<|~=|==", spec) and name not in KNOWN_BREAKS}
    assert capped == {}


def test_conda_env_declares_the_same_floors_as_pyproject(declared):
    yaml = pytest.importorskip("yaml")
    env = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert _parse(pip) == declared
