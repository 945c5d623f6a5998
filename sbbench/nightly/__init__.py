"""Nightly benchmark jobs: a pinned suite, compared with the history of earlier nights.

Modules, one concern each: suite (load, digest, confirmation sub-suites), fingerprint (machine
and library versions), metrics (per-method values and exact invariants from a night's runs),
gate (pure: the statistical rule), history (earlier nights by tags, accept markers), lock
(no two nightlies of one suite at once), report (table, nightly.md/json, trend figures), night
(the orchestration behind `sbbench nightly`).
"""
