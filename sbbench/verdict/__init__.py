"""The verdict: finished studies -> docs/results.md, the paper's claims beside what sbbench
measured, each with a verdict under stated rules.

Modules: rules (the verdict rules and their text), power (seeds to settle an inconclusive
comparison), studies (which sweep each study is, its runs, its analysis), selection (per-example
shares), claims (one row per claim), document (the Markdown and its figures), api (entry point
and argparse). Importing this package is cheap; mlflow and scipy load when `verdict` runs.
"""

from sbbench.verdict.api import (
                                 VerdictOptions,
                                 VerdictResult,
                                 add_verdict_arguments,
                                 run_verdict_command,
                                 verdict,
)

__all__ = ["VerdictOptions", "VerdictResult", "add_verdict_arguments", "run_verdict_command",
           "verdict"]
