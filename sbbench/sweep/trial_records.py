"""Names that tie Optuna trials and MLflow child runs together (either side finds the other).

Aliases: the names live in `sbbench.record_names`, the one module every side imports."""

from sbbench.record_names import (  # noqa: F401
    ATTR_AWAITING, ATTR_CURVE, ATTR_FAILURE_KIND, ATTR_FAILURE_REASON, ATTR_INTERRUPTED,
    ATTR_POINT, ATTR_RUN_ID, ATTR_TIMING, ATTR_WORKER_PID, ENV_PARENT_RUN_ID, STUDY_ATTR_TARGET,
    TAG_KIND, TAG_PRUNED, TAG_SAMPLER, TAG_STUDY, TAG_TRIAL, STUDY_ATTR_PARENT_RUN,
    STUDY_ATTR_FILE, STUDY_ATTR_DIGEST, ENV_DEVICE, FAILURE_DUPLICATE)
