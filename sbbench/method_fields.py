"""Which config fields mean something for which method (torch-free, so the analysis can use it
without importing the selection core). Sweeps use it so grids hold no meaningless points; the
analysis uses it to group runs by what actually defines their configuration."""

METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    "traditional": (),
    "random": ("beta", "p_min", "prime_epochs", "partial_batch", "forward_batch_size"),
    "sb": ("beta", "p_min", "history_size", "score_mode", "prime_epochs", "partial_batch",
           "forward_batch_size"),
    "stale_sb": ("beta", "p_min", "history_size", "score_mode", "prime_epochs", "partial_batch",
                 "forward_batch_size", "staleness"),
    "kath18": ("kath_presample_ratio", "kath_score", "kath_weighting", "kath_tau_momentum",
               "score_mode"),
}

ALL_METHOD_FIELDS = frozenset().union(*METHOD_FIELDS.values())


def applies(field_name: str, method: str) -> bool:
    """Is this field meaningful for this method? (fields of no method always are)"""
    return field_name not in ALL_METHOD_FIELDS or field_name in METHOD_FIELDS.get(method, ())
