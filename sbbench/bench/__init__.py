"""The performance benchmark: the selection core against the theoretical bound (docs/methods.md)."""
