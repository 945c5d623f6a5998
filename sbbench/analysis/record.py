"""Names the analysis reads from the MLflow record of a training run (the contract).

The names themselves come from `sbbench.record_names` (stdlib only, shared by training, tracking,
sweeps and analysis), so the analysis never imports torch; the analysis-only vocabulary
(outcomes, families, workload params) is defined here. The method-field table comes from the
torch-free `sbbench.method_fields`, shared with the selection core and the sweeps.
"""

from __future__ import annotations

# Every name of the record comes from the one contract module (a leaf, stdlib only).
from sbbench.record_names import (  # noqa: E402,F401
    ARTIFACT_PER_EXAMPLE, DEFAULT_EXPERIMENT, DEFAULT_TRACKING_URI, FAILURE_DIVERGED,
    FAILURE_ERROR, FAILURE_INTERRUPTED, FAILURE_PRUNED, KIND_ANALYSIS, M_EXAMPLES_BACKPROPPED,
    M_EXAMPLES_SEEN, M_FINAL_TEST, M_FINAL_VAL, M_KEEP_RATE, M_SELECTION_FORWARDS,
    M_TEST_ERROR, M_TIME_BACKWARD, M_TIME_FORWARD_SELECT, M_TIME_FORWARD_TRAIN, M_TIME_OTHER,
    M_TOTAL_BACKPROPPED, M_TOTAL_SELECTION_FORWARDS, M_TOTAL_SEEN, M_TOTAL_TIME, M_TRAIN_TIME,
    M_VAL_ERROR, PHASES, ROLE_REFERENCE, TAG_DATASET, TAG_FAILURE_KIND, TAG_FAILURE_REASON,
    TAG_KIND, TAG_METHOD, TAG_MODEL, TAG_PARENT, TAG_PRUNED, TAG_ROLE, TAG_RUN_NAME, TAG_STUDY,
    TAG_TRIAL, TAG_STAGE, STAGE_TUNING, TAG_TUNED_VALUES, TAG_TUNED_FROM)

CURVE_METRICS = (M_VAL_ERROR, M_TEST_ERROR, M_TRAIN_TIME, M_EXAMPLES_BACKPROPPED,
                 M_EXAMPLES_SEEN)

# Cumulative phase times (seconds on the training clock); they add up to train_time_s.
PHASE_LABELS = {M_TIME_FORWARD_SELECT: "forward (select)", M_TIME_FORWARD_TRAIN: "forward (train)",
                M_TIME_BACKWARD: "backward", M_TIME_OTHER: "other"}

# Methods
TRADITIONAL = "traditional"
KATH18 = "kath18"
METHOD_NAMES = {"traditional": "Traditional", "random": "Random", "sb": "SB",
                "stale_sb": "StaleSB", "kath18": "Katharopoulos18"}
BASELINES = (TRADITIONAL, KATH18)

# Which config fields mean something for which method. A field that does not apply to a run's
# method is dropped from its configuration, so Traditional runs logged with different (ignored)
# beta values are one configuration, not several. (sbbench.method_fields is torch-free.)
from sbbench.method_fields import METHOD_FIELDS  # noqa: E402

METHOD_SPECIFIC_FIELDS = frozenset(f for fields in METHOD_FIELDS.values() for f in fields)

# Params that do not define the experiment (where and how it ran, not what ran).
NON_DEFINING_PARAMS = frozenset({"seed", "device", "data_dir", "download", "num_threads",
                                 "experiment", "tracking_uri"})

# The workload: what is being trained and to which budget. Runs of different workloads are never
# compared. The issue names dataset, model, epochs, time_budget_s, label_noise and the split
# sizes; the other `group="workload"` fields of the run config change the task as much (model
# width, dropout, augmentation, SVHN extra) or the fairness of the timing (evaluation schedule,
# early stop at a target), so they are part of the workload too.
WORKLOAD_PARAMS = ("dataset", "model", "epochs", "time_budget_s", "label_noise", "train_size",
                   "val_size", "test_size", "model_width", "dropout", "augment", "svhn_extra",
                   "eval_every_examples", "target_val_error",
                   # changes what an evaluation measures (BatchNorm statistics re-estimated)
                   "recompute_bn_before_eval")

# Axes of the ablation panels (only drawn when at least two values are present).
ABLATION_AXES = ("beta", "staleness", "batch_size", "label_noise")

# Run outcomes as the analysis classifies them.
OUTCOME_OK = "ok"                    # FINISHED: a result
OUTCOME_DIVERGED = "diverged"        # FAILED, diverged (run_failures): kept, never reaches target
OUTCOME_PRUNED = "pruned"            # sweep pruned it: kept as censored, not a result
OUTCOME_ERROR = "error"              # crashed: reported, excluded
OUTCOME_INTERRUPTED = "interrupted"  # KILLED: reported, excluded
OUTCOME_RUNNING = "running"          # not finished yet: reported, excluded
OUTCOME_NO_DATA = "no_data"          # FINISHED without any evaluation: reported, excluded
KEPT_OUTCOMES = (OUTCOME_OK, OUTCOME_DIVERGED, OUTCOME_PRUNED)

ALPHA = 0.05
# Below this many runs in either arm a comparison is flagged underpowered wherever it appears
# (docs/analysis.md: at least 5 seeds per arm), whatever the smallest attainable p says.
MIN_SEEDS_PER_ARM = 5

# Which multiple-comparison family a comparison belongs to. Holm runs over the confirmatory
# family only (the comparisons a study declared); exploratory ones keep their raw p and are
# never called significant.
FAMILY_CONFIRMATORY = "confirmatory"
FAMILY_EXPLORATORY = "exploratory"
