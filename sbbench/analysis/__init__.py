"""Analysis of logged runs: time to target, speedups with CIs, tests, figures and reports.

Modules, one job each: record (the MLflow names read), loading, grouping, time_to_target,
statistics, comparisons, costs, figures, summary (summary.json and the printed table), report
(HTML and Markdown), api (the entry points). Importing this package is cheap: mlflow, scipy and
matplotlib are imported when `analyze` runs. Nothing here imports torch.
"""

from sbbench.analysis.api import (AnalysisInputError, AnalysisResult, AnalyzeOptions,
                                  ReportPaths, add_analyze_arguments, analyze, options_from_args,
                                  run_analyze_command)

__all__ = ["AnalysisInputError", "AnalysisResult", "AnalyzeOptions", "ReportPaths",
           "add_analyze_arguments", "analyze", "options_from_args", "run_analyze_command"]
