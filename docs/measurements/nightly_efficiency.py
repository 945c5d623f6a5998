"""The nightly efficiency metric, old estimate against new, on the runs of recorded nights.

Old: a method's epoch time after priming = (its whole training clock - priming charged at
Traditional's whole-run epoch time) / epochs after priming. New: both the method's and
Traditional's epoch times read off each run's own clock between the end of priming (an
evaluation) and the end of the run. Same runs, both estimates; per method the per-run values of
every night, their spread within a night (CV over seeds) and across nights (CV of the nightly
medians). Also the per-run throughput spread, for scale.

    PYTHONPATH=. python docs/measurements/nightly_efficiency.py sqlite:////tmp/nightly_demo/mlflow.db
"""

from __future__ import annotations

import statistics
import sys

from mlflow import MlflowClient

from sbbench.nightly import history as H
from sbbench.nightly import metrics as M


def cv(values: list[float | None]) -> float:
    values = [v for v in values if v is not None]   # None: no estimate (a negative epoch time)
    return statistics.stdev(values) / statistics.mean(values) if len(values) > 1 else 0.0


def main(uri: str) -> None:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(H.DEFAULT_EXPERIMENT)
    nights = client.search_runs([experiment.experiment_id],
                                f"tags.`{H.TAG_KIND}` = '{H.KIND_NIGHTLY}'",
                                order_by=["attributes.start_time ASC"])
    per_method: dict[str, dict[str, list[list[float]]]] = {}
    for night in nights:
        study = night.data.tags[H.TAG_NIGHT_STUDY]
        records = [r for r in M.trial_runs(client, [experiment.experiment_id],
                                           night.info.run_id, study) if r.status == "FINISHED"]
        trad = [r for r in records if r.method == "traditional"]
        trad_epoch = statistics.median(M._epoch_s(r) for r in trad)
        trad_post = statistics.median(M.post_priming_epoch_s(r) for r in trad)
        for method in {r.method for r in records}:
            rows = per_method.setdefault(method, {"old": [], "new": [], "tput": []})
            runs = [r for r in records if r.method == method]
            rows["tput"].append([r.metrics["total_examples_seen"] / r.metrics[
                "total_train_time_s"] for r in runs])
            if method in M.KEEP_RATE_METHODS:
                new = [M.efficiency(r, trad_epoch, trad_post) for r in runs]
                old = []
                for r in runs:
                    clocks, r.at_priming = r.at_priming, {}
                    old.append(M.efficiency(r, trad_epoch))
                    r.at_priming = clocks
                rows["new"].append(new)
                rows["old"].append(old)
    print(f"{len(nights)} nights; per-run values, then CV within nights (mean over nights) and "
          "CV of the nightly medians")
    for method, rows in sorted(per_method.items()):
        for kind in ("tput", "old", "new"):
            series = rows[kind]
            if not series:
                continue
            within = statistics.mean(cv(v) for v in series)
            across = cv([statistics.median([x for x in v if x is not None]) for v in series])
            shown = "  ".join("[" + ", ".join("none" if x is None else f"{x:.3g}" for x in v)
                              + "]" for v in series)
            name = {"tput": "throughput", "old": "efficiency (old)",
                    "new": "efficiency (new)"}[kind]
            print(f"{method:12s} {name:17s} within {within:6.1%}  across {across:6.1%}  {shown}")


if __name__ == "__main__":
    main(sys.argv[1])
