"""The performance benchmark: the selection core against the theoretical bound of SPEC.md."""
