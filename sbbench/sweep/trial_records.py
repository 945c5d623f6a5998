"""Names that tie Optuna trials and MLflow child runs together (either side finds the other)."""

TAG_STUDY = "sbbench.study"
TAG_TRIAL = "sbbench.trial"
TAG_KIND = "sbbench.kind"
TAG_PRUNED = "sbbench.pruned"
ATTR_RUN_ID = "mlflow_run_id"
ATTR_POINT = "sbbench_point"          # the grid point (JSON) a trial runs
ATTR_INTERRUPTED = "interrupted"      # FAIL because the worker stopped, not the method: re-run
ATTR_FAILURE_KIND = "failure_kind"
ATTR_FAILURE_REASON = "failure_reason"
ENV_PARENT_RUN_ID = "SBBENCH_PARENT_RUN_ID"
