"""Names that tie Optuna trials and MLflow child runs together (either side finds the other)."""

TAG_STUDY = "sbbench.study"
TAG_TRIAL = "sbbench.trial"
TAG_KIND = "sbbench.kind"
TAG_PRUNED = "sbbench.pruned"
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
STUDY_ATTR_PARENT_RUN = "sbbench_parent_run_id"  # the sweep's parent run (joining machines use it)
STUDY_ATTR_FILE = "sbbench_study_file"        # the study file's content (JSON) at creation
STUDY_ATTR_DIGEST = "sbbench_study_digest"    # sha256 of that JSON
ENV_DEVICE = "SBBENCH_DEVICE"                 # the device a worker was given (--devices)
FAILURE_DUPLICATE = "duplicate"              # a point another machine popped first: void
