"""The names that make up the MLflow record: the contract between training, sweeps, analysis
and the nightly jobs.

Tags, params, metric names, artifact names, Optuna trial attributes: every side imports them
from here and nowhere else. This module imports nothing (a leaf), so the torch-free analysis,
the tracking layer and the training loop can all depend on it.
"""

from __future__ import annotations

DEFAULT_EXPERIMENT = "sbbench"
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

# --- tags: what ran, where, and how it ended ---------------------------------------------------
TAG_METHOD = "sbbench.method"
TAG_DATASET = "sbbench.dataset"
TAG_MODEL = "sbbench.model"
TAG_GIT_COMMIT = "sbbench.git_commit"
TAG_TORCH_VERSION = "sbbench.torch_version"
TAG_PYTHON_VERSION = "sbbench.python_version"
TAG_HOST = "sbbench.host"
TAG_DEVICE = "sbbench.device"
TAG_KIND = "sbbench.kind"                      # bench | analysis | nightly | (sweep roles)
TAG_FAILURE_KIND = "sbbench.failure_kind"      # diverged | error | interrupted | pruned
TAG_FAILURE_REASON = "sbbench.failure_reason"
TAG_STOP_REASON = "sbbench.stop_reason"        # budget | time_budget | target
# How the run seed is turned into independent random streams (see sbbench.seeds).
TAG_SEED_STREAMS = "sbbench.seed_streams"
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
# Sweeps: either side (Optuna trial, MLflow child run) finds the other.
TAG_STUDY = "sbbench.study"
TAG_TRIAL = "sbbench.trial"
TAG_PRUNED = "sbbench.pruned"
TAG_SAMPLER = "sbbench.sampler"
# A run's role in a study. Reference runs are seeds run only to set the factor targets; they are
# never timed or compared.
TAG_ROLE = "sbbench.role"
ROLE_REFERENCE = "reference"
# Two-stage studies (a `tuning:` section): each method is tuned on seeds that are never timed,
# then timed with its own best setting on fresh seeds. Tuning runs are never compared; the
# Traditional tuning runs at its chosen setting also carry TAG_ROLE=reference (they set the
# factor targets of the timing stage).
TAG_STAGE = "sbbench.stage"
STAGE_TUNING = "tuning"
STAGE_TIMING = "timing"
TAG_TUNED_VALUES = "sbbench.tuned_values"      # timing runs: JSON {field: chosen value}
TAG_TUNED_FROM = "sbbench.tuned_from"          # timing runs: how the values were chosen
KIND_ANALYSIS = "analysis"                     # the analysis' own report runs
KIND_BENCH = "bench"

# Values of TAG_FAILURE_KIND.
FAILURE_DIVERGED = "diverged"
FAILURE_ERROR = "error"
FAILURE_INTERRUPTED = "interrupted"
FAILURE_PRUNED = "pruned"

# --- params ------------------------------------------------------------------------------------
# Every RunConfig field is a param under its own name (`RunConfig.to_mlflow_params`); these are
# the ones other sides read by name.
P_SEED = "seed"
P_METHOD = "method"

# --- metrics logged at every evaluation (step = examples seen) ---------------------------------
M_VAL_ERROR = "val_error"
M_VAL_LOSS = "val_loss"
M_TEST_ERROR = "test_error"
M_TRAIN_LOSS = "train_loss"
M_TRAIN_TIME = "train_time_s"                  # the training clock (evaluation excluded)
M_EXAMPLES_SEEN = "examples_seen"
M_EXAMPLES_BACKPROPPED = "examples_backpropped"
M_SELECTION_FORWARDS = "selection_forwards"
M_SELECTION_FORWARDS_SKIPPED = "selection_forwards_skipped"
M_TRAINING_FORWARDS = "training_forwards"
M_OPTIMIZER_STEPS = "optimizer_steps"
M_KEEP_RATE = "keep_rate"
M_EPOCH = "epoch"
M_LR = "lr"
M_KATH_TAU = "kath_tau"
M_KATH_IS_ON = "kath_is_on"
# Cumulative phase times (seconds on the training clock); they add up to train_time_s.
M_TIME_FORWARD_SELECT = "time_forward_select_s"
M_TIME_FORWARD_TRAIN = "time_forward_train_s"
M_TIME_BACKWARD = "time_backward_s"
M_TIME_OTHER = "time_other_s"
PHASES = (M_TIME_FORWARD_SELECT, M_TIME_FORWARD_TRAIN, M_TIME_BACKWARD, M_TIME_OTHER)

# --- end-of-run summaries (own keys, step 0) ---------------------------------------------------
M_FINAL_VAL = "final_val_error"
M_FINAL_TEST = "final_test_error"
M_TOTAL_TIME = "total_train_time_s"
M_TOTAL_WALL_TIME = "total_wall_time_s"
M_TOTAL_SEEN = "total_examples_seen"
M_TOTAL_BACKPROPPED = "total_examples_backpropped"
M_TOTAL_SELECTION_FORWARDS = "total_selection_forwards"
M_TOTAL_SELECTION_FORWARDS_SKIPPED = "total_selection_forwards_skipped"
M_TOTAL_OPTIMIZER_STEPS = "total_optimizer_steps"
M_TOTAL_EPOCHS = "total_epochs"
M_OVERALL_KEEP_RATE = "overall_keep_rate"

# --- artifacts ---------------------------------------------------------------------------------
ARTIFACT_CONFIG = "config.json"
ARTIFACT_PER_EXAMPLE = "per_example.csv.gz"
ARTIFACT_ERROR_VS_TIME = "error_vs_time.png"

# --- Optuna trial attributes and the environment of trial processes ----------------------------
ATTR_RUN_ID = "mlflow_run_id"
ATTR_WORKER_PID = "worker_pid"        # the process running the trial (a fork server's child)
ATTR_TIMING = "timing"                # {launched_at, entered_at, ended_at}: epoch seconds
ATTR_POINT = "sbbench_point"          # the grid point (JSON) a trial runs
ATTR_INTERRUPTED = "interrupted"      # FAIL because the worker stopped, not the method: re-run
ATTR_FAILURE_KIND = "failure_kind"
ATTR_FAILURE_REASON = "failure_reason"
ATTR_AWAITING = "awaiting_target"     # run finished; value told once the study's target is known
ATTR_CURVE = "curve"                  # [[train_time_s, val_error], ...] of an awaiting trial
STUDY_ATTR_TARGET = "target_error:"   # + setting key: a target_factor study's fixed target
ENV_PARENT_RUN_ID = "SBBENCH_PARENT_RUN_ID"

# Experiment tag MLflow 3's UI reads to choose an experiment's view; this value selects the
# model-training ("custom model development") view rather than the GenAI one.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_MODEL_TRAINING = "custom_model_development"

# Several machines on one study (`sbbench sweep --join`, `--devices`).
STUDY_ATTR_PARENT_RUN = "sbbench_parent_run_id"  # the sweep's parent run (joining machines use it)
STUDY_ATTR_FILE = "sbbench_study_file"        # the study file's content (JSON) at creation
STUDY_ATTR_DIGEST = "sbbench_study_digest"    # sha256 of that JSON
# A two-stage study's choice, fixed once its tuning stage has every result: JSON with `chosen`
# (configuration key -> tuned values) and `candidates` (every setting's scores and trials).
STUDY_ATTR_TUNING_CHOICE = "sbbench_tuning_choice"
ENV_DEVICE = "SBBENCH_DEVICE"                 # the device a worker was given (--devices)
FAILURE_DUPLICATE = "duplicate"               # a point another machine popped first: void
TAG_DEVICE_NAME = "sbbench.device_name"       # the hardware behind sbbench.device

# The nightly jobs (`sbbench nightly`).
TAG_FINGERPRINT = "sbbench.fingerprint"
TAG_FINGERPRINT_DETAIL = "sbbench.fingerprint_detail"
KIND_NIGHTLY = "nightly"
TAG_SUITE = "sbbench.suite"
TAG_SUITE_DIGEST = "sbbench.suite_digest"
TAG_SUITE_PATH = "sbbench.suite_path"
TAG_VERDICT = "sbbench.nightly.verdict"
TAG_EXIT_CODE = "sbbench.nightly.exit_code"
TAG_REGRESSIONS = "sbbench.nightly.regressions"
TAG_SUMMARY = "sbbench.nightly.summary"
TAG_ACCEPTED = "sbbench.nightly.accepted"
TAG_ACCEPTED_AT = "sbbench.nightly.accepted_at"
TAG_NIGHT_STUDY = "sbbench.nightly.study"
