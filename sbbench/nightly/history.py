"""Earlier nights: found by tags with search_runs, cut at the latest accept marker.

A night is a parent run tagged `sbbench.kind=nightly`, `sbbench.suite=<name>`,
`sbbench.fingerprint=<hash>`; its compared metrics are run metrics under their own names
(`throughput/sb`, ...), its per-run values the steps of `runs/<metric>`, and its verdict the tag
`sbbench.nightly.verdict`. History = the last N nights of the same suite and fingerprint that
FINISHED with a measured, good verdict (baseline, ok, unconfirmed), from the latest accepted
night on (`sbbench nightly accept RUN_ID` tags it `sbbench.nightly.accepted=true`; the accepted
night counts whatever its verdict). A regressed night is not history until accepted: otherwise a
real slowdown would widen the band and hide itself within a few nights.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from sbbench.nightly.fingerprint import TAG_FINGERPRINT
from sbbench.record_names import (  # noqa: F401  (the record's names live there)
    TAG_KIND, KIND_NIGHTLY, TAG_SUITE, TAG_SUITE_DIGEST, TAG_SUITE_PATH, TAG_VERDICT,
    TAG_EXIT_CODE, TAG_REGRESSIONS, TAG_SUMMARY, TAG_ACCEPTED, TAG_ACCEPTED_AT, TAG_NIGHT_STUDY)

SAMPLES_PREFIX = "runs/"

VERDICT_BASELINE = "baseline"
VERDICT_OK = "ok"
VERDICT_UNCONFIRMED = "unconfirmed"
VERDICT_REGRESSION = "regression"
VERDICT_ERROR = "could not measure"
GOOD_VERDICTS = (VERDICT_BASELINE, VERDICT_OK, VERDICT_UNCONFIRMED)
MEASURED_VERDICTS = GOOD_VERDICTS + (VERDICT_REGRESSION,)
EXIT_CODES = {VERDICT_BASELINE: 0, VERDICT_OK: 0, VERDICT_UNCONFIRMED: 0,
              VERDICT_REGRESSION: 1, VERDICT_ERROR: 2}
DEFAULT_EXPERIMENT = "sbbench-nightly"
DEFAULT_HISTORY = 30


class NightlyInputError(ValueError):
    """A bad input to `sbbench nightly` (exit 2, one line)."""


@dataclass
class Night:
    run_id: str
    start_time: int
    status: str
    tags: dict[str, str]
    metrics: dict[str, float]
    name: str = ""

    @classmethod
    def from_mlflow(cls, run) -> "Night":
        return cls(run.info.run_id, run.info.start_time or 0, run.info.status,
                   dict(run.data.tags), dict(run.data.metrics), run.info.run_name or "")

    @property
    def verdict(self) -> str | None:
        return self.tags.get(TAG_VERDICT)

    @property
    def accepted(self) -> bool:
        return self.tags.get(TAG_ACCEPTED) == "true"

    @property
    def good(self) -> bool:
        """History material: finished with a good verdict, or accepted as a new normal after
        measuring (`mlflow run` marks a night that exited 1 FAILED; its verdict still says it
        measured)."""
        if self.accepted:
            return self.verdict in MEASURED_VERDICTS
        return self.status == "FINISHED" and self.verdict in GOOD_VERDICTS

    @property
    def when(self) -> str:
        return _dt.datetime.fromtimestamp(self.start_time / 1000, _dt.timezone.utc).strftime(
            "%Y-%m-%d %H:%M")


@dataclass
class History:
    nights: list[Night]                      # oldest first, good, after the accept
    accepted: Night | None = None
    others: list[Night] = field(default_factory=list)   # same suite, other fingerprints

    def values(self, metric: str) -> list[float]:
        return [n.metrics[metric] for n in self.nights if metric in n.metrics]

    @property
    def last_good(self) -> Night | None:
        return self.nights[-1] if self.nights else None


def find_nights(client, experiment_ids: list[str], suite: str,
                fingerprint: str | None = None) -> list[Night]:
    """Every night of a suite (of one fingerprint when given), oldest first."""
    query = f"tags.`{TAG_KIND}` = '{KIND_NIGHTLY}' and tags.`{TAG_SUITE}` = '{suite}'"
    if fingerprint:
        query += f" and tags.`{TAG_FINGERPRINT}` = '{fingerprint}'"
    nights, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=query,
                                  order_by=["attributes.start_time ASC"], max_results=1000,
                                  page_token=token)
        nights += [Night.from_mlflow(r) for r in page]
        token = page.token
        if not token:
            break
    nights.sort(key=lambda n: n.start_time)
    return nights


def select_history(nights: list[Night], exclude_run_id: str | None = None,
                   limit: int = DEFAULT_HISTORY, before: int | None = None) -> History:
    """The last `limit` good nights after the latest accept (and before `before`, ms)."""
    earlier = [n for n in nights if n.run_id != exclude_run_id
               and (before is None or n.start_time < before)]
    accepted = None
    for night in earlier:
        if night.accepted:
            accepted = night
    if accepted is not None:
        earlier = [n for n in earlier if n.start_time >= accepted.start_time]
    good = [n for n in earlier if n.good]
    return History(nights=good[-limit:] if limit else good, accepted=accepted)


def samples_of(client, night: Night, metric: str) -> list[float]:
    """The per-run values a night recorded for a metric (steps of `runs/<metric>`)."""
    history = client.get_metric_history(night.run_id, SAMPLES_PREFIX + metric)
    return [m.value for m in sorted(history, key=lambda m: m.step)]


def experiment_ids(client, experiment: str | None) -> list[str]:
    import os

    if experiment is None and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return [os.environ["MLFLOW_EXPERIMENT_ID"]]
    found = client.get_experiment_by_name(experiment or DEFAULT_EXPERIMENT)
    return [found.experiment_id] if found is not None else []


def accept(client, run_id: str) -> Night:
    """Mark a night as the start of a new normal."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise NightlyInputError(f"invalid run_id={run_id!r}; allowed: the id of a nightly "
                                "parent run (sbbench nightly history lists them)") from None
    if run.data.tags.get(TAG_KIND) != KIND_NIGHTLY:
        raise NightlyInputError(f"invalid run_id={run_id!r}: run is not a nightly (tag "
                                f"{TAG_KIND}={run.data.tags.get(TAG_KIND)!r}); allowed: a "
                                "nightly parent run")
    if run.data.tags.get(TAG_VERDICT) not in MEASURED_VERDICTS:
        raise NightlyInputError(f"invalid run_id={run_id!r}: that night did not measure "
                                f"(status {run.info.status}, verdict "
                                f"{run.data.tags.get(TAG_VERDICT)!r}); allowed: a night that "
                                "finished and measured")
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    client.set_tag(run_id, TAG_ACCEPTED, "true")
    client.set_tag(run_id, TAG_ACCEPTED_AT, now)
    return Night.from_mlflow(client.get_run(run_id))
