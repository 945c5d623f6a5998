"""Ways a run can end other than by its budget (defined in the leaf `sbbench.run_failures`,
re-exported here for the training side and existing imports)."""

from sbbench.run_failures import RunDiverged, RunPruned

__all__ = ["RunDiverged", "RunPruned"]
