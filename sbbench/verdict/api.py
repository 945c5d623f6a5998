"""`sbbench verdict`: finished studies -> docs/results.md (claims table, verdicts, figures, run
ids, commands, compute), regenerated as studies finish."""

from __future__ import annotations

import argparse
import datetime as _dt
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from sbbench.analysis.api import (
    MIN_RESAMPLES,
    PROTOCOL_RESAMPLES,
    AnalysisInputError,
    resolve_tracking_uri,
)
from sbbench.analysis.record import DEFAULT_EXPERIMENT
from sbbench.urls import mask_url
from sbbench.verdict import claims as C
from sbbench.verdict import document as D
from sbbench.verdict import rules
from sbbench.verdict.studies import STUDY_ROLES, Study, load_study, parse_study_runs

DEFAULT_OUT = "docs/results.md"
DEFAULT_WORK_DIR = "sbbench-out/verdict"


@dataclass(frozen=True)
class VerdictOptions:
    # role -> a sweep parent run id or a study name; a role not given is looked up by its own
    # name (the latest sweep of that study), and is "not run yet" when there is none
    study_runs: dict = field(default_factory=dict)
    tracking_uri: str | None = None
    experiment: str | None = None
    out: str = DEFAULT_OUT
    work_dir: str = DEFAULT_WORK_DIR        # the analyses' full outputs
    resamples: int = PROTOCOL_RESAMPLES
    seed: int = 0
    log_to_mlflow: bool = True              # the analyses' MLflow runs
    reuse_analysis: bool = False            # the latest finished analysis run of each sweep
    include_unfinished: bool = False        # analyse sweeps whose parent run has not finished


@dataclass
class VerdictResult:
    path: Path
    claims: list[C.ClaimRow]
    studies: dict[str, Study]
    text: str


def validate(options: VerdictOptions) -> None:
    unknown = set(options.study_runs) - set(STUDY_ROLES)
    if unknown:
        raise AnalysisInputError("study_run", sorted(unknown),
                                 f"allowed roles: {', '.join(STUDY_ROLES)}")
    if isinstance(options.resamples, bool) or not isinstance(options.resamples, int) or \
            options.resamples < MIN_RESAMPLES:
        raise AnalysisInputError("resamples", options.resamples,
                                 f"allowed: an integer >= {MIN_RESAMPLES}")
    if not str(options.out).endswith(".md"):
        raise AnalysisInputError("out", options.out, "allowed: a Markdown file path (*.md)")
    out = Path(options.out)
    if out.exists() and out.is_dir():
        raise AnalysisInputError("out", options.out, "allowed: a file (this is a directory)")


def command_line(options: VerdictOptions, studies: dict[str, Study]) -> str:
    """The command that regenerates the document, with the run ids it read."""
    parts = ["sbbench", "verdict"]
    for role in STUDY_ROLES:
        s = studies[role]
        if s.parent_run_id:
            parts += ["--study-run", f"{role}={s.parent_run_id}"]
    if options.tracking_uri:
        parts += ["--tracking-uri", mask_url(options.tracking_uri)]
    if options.experiment:
        parts += ["--experiment", options.experiment]
    parts += ["--out", str(options.out), "--resamples", str(options.resamples),
              "--seed", str(options.seed)]
    if options.reuse_analysis:
        parts.append("--reuse-analysis")
    if options.include_unfinished:
        parts.append("--include-unfinished")
    return " ".join(shlex.quote(p) for p in parts)


def verdict(options: VerdictOptions) -> VerdictResult:
    from mlflow import MlflowClient

    validate(options)
    uri = resolve_tracking_uri(options.tracking_uri)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(options.experiment or DEFAULT_EXPERIMENT)
    experiment_ids = [experiment.experiment_id] if experiment is not None else []
    work_dir = Path(options.work_dir)
    studies = {role: load_study(client, experiment_ids, role,
                                options.study_runs.get(role, role), uri, work_dir,
                                resamples=options.resamples, seed=options.seed,
                                log=options.log_to_mlflow, reuse=options.reuse_analysis,
                                include_unfinished=options.include_unfinished)
               for role in STUDY_ROLES}
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figures_dir = out.with_suffix("")
    copied = D.copy_figures(studies, figures_dir)
    text, claim_rows = render(options, studies, client, copied, out.parent)
    out.write_text(text)
    return VerdictResult(out, claim_rows, studies, text)


def _summary(study: Study) -> dict | None:
    return study.summary if study.ran else None


def render(options: VerdictOptions, studies: dict[str, Study], client,
           copied: dict[str, list[Path]], doc_dir: Path) -> tuple[str, list[C.ClaimRow]]:
    kw = {"seed": options.seed, "resamples": options.resamples}
    main, noise = studies["mnist1d"], studies["label_noise"]
    main_note = main.note if not main.ran else ""
    noise_note = noise.note if not noise.ran else ""
    primary = C.speedup_claims(_summary(main), "mnist1d", note=main_note, **kw)
    tight = C.speedup_claims(_summary(main), "mnist1d", target_index=C.TIGHT, note=main_note,
                             **kw)
    robust, per_rate = C.robustness_rows(_summary(noise), "label_noise", note=noise_note, **kw)
    hard = C.hard_example_row(_summary(main), client, "mnist1d", note=main_note)
    random_rows = C.random_rows(_summary(main), "mnist1d", note=main_note, **kw)
    wide = studies["mnist1d_wide_lr"]
    wide_rows = C.speedup_claims(_summary(wide), "mnist1d_wide_lr",
                                 note=wide.note if not wide.ran else "", **kw)
    noisy = C.noisy_share_rows(_summary(noise), client, "label_noise")
    claim_rows = [*primary, robust, hard]
    command = command_line(options, studies)
    uri_flag = f" --tracking-uri {mask_url(options.tracking_uri)}" if options.tracking_uri \
        else ""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    counts = {v: sum(r.verdict == v for r in claim_rows)
              for v in (rules.REPRODUCED, rules.NOT_REPRODUCED, rules.INCONCLUSIVE,
                        rules.NOT_RUN, rules.NOT_MEASURED)}
    total_compute = sum(s.compute()["train_time_s"] for s in studies.values() if s.ran)
    lines = [
        "# Results: the Selective-Backprop paper's claims, measured by sbbench", "",
        (f"Generated by `sbbench verdict` on {now} from the MLflow records listed at the end; "
        "nothing in this file is typed by hand. Regenerate it with the command under "
        "[Reproduce](#reproduce) as studies finish: a study that has not run shows "
        f"\"{rules.NOT_RUN}\"."), "",
        "Verdicts over the six claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()
                                                     if n) + ". Training compute behind this "
        f"page: {D.seconds(total_compute)} on the training clock "
        "(sum of total_train_time_s over every run of every study).", "",
        ("**Read this first**: every run here is "
         f"{D.workload_line(studies)} (see "
         "[What differs from the paper](#what-differs-from-the-papers-setting)); the paper "
         "timed CIFAR/SVHN ResNets on GPUs. A verdict here is about this workload."), "",
        "## Claims", "",
        ("At the primary target (1.4 x Traditional's median final validation error, the "
        "paper's rule). Speedup = median time to target of the baseline / of the method "
        "(training clock, evaluation excluded); `<=`/`>=`: a bound (runs that never reached "
        "the target)."), "",
        *D.claim_table(claim_rows), "",
        D.source_line(main, command), "", D.source_line(noise, command), "",
        "## Verdict rules", "", rules.RULES_MARKDOWN, "",
        "## The tight target", "",
        ("The same speedup claims at 1.1 x Traditional's median final validation error "
        "(exploratory: a conclusion that flips here hangs on the target)."), "",
        *D.claim_table(tight), "",
        D.source_line(main, command), "",
        "## A wider learning-rate grid for the baselines", "",
        ("A check on the claims above: where Traditional's or Random's tuned learning rate is "
        "the largest of its grid, their best may lie beyond it and the speedups may flatter "
        "SB. The mnist1d_wide_lr study repeats the main comparison (same workload, schedule, "
        "seeds and rule) with their grid widened; its own Holm family, primary target. A claim "
        "reproduced above but not here hangs on the baselines' learning rate."), "",
        *D.claim_table(wide_rows), "",
        D.source_line(wide, command), "",
        "## SB against Random: does the selection itself help?", "",
        ("Random keeps the same expected share of examples as SB at the same beta, chosen "
        "without looking at the loss. SB faster than Random means the choice of examples, not "
        "only doing fewer backward passes, saves time (exploratory)."), "",
        *D.claim_table(random_rows), "",
        D.source_line(main, command), "",
        "## Robustness to randomized labels", "",
        ("SB against Traditional at each noise rate of the label_noise study, primary target; "
        "Holm over the rates from 0.1% to 20% (0% shown for reference, not in the family)."),
        "",
        *D.table(["randomized labels", "speedup [95% CI]", "p (one-sided)", "n per arm",
                  "final test error diff (SB - Trad)", "verdict", "seeds per arm to settle"],
                 [[f"{r.extra.get('label_noise', 0):.1%}", r.speedup, r.p, r.n,
                   _diff(r.extra.get("final_error_diff")), r.verdict, r.seeds]
                  for r in per_rate] or [["-", "-", "-", "-", "-", rules.NOT_RUN, "-"]]), "",
        D.source_line(noise, command), "",
        "## What SB spends its backward passes on", "",
        (f"Hard examples (main study): {hard.speedup}; verdict **{hard.verdict}** "
        f"({hard.reason})."), "",
        "Mislabelled examples (label_noise study; exploratory):", "",
        *D.noisy_section(noisy), "",
        D.source_line(noise, command), "",
        "## Tuned settings", "",
        ("Each method's setting in the timed runs, from their `sbbench.tuned_values` tags "
        "(two-stage studies tune each method on seeds that are never timed)."), "",
        *D.tuned_section(studies), "",
        "## Figures", "",
        ("Copied from each study's analysis (`sbbench analyze`); "
        "docs/analysis.md explains how to read each one."), "",
        *D.figures_section(copied, doc_dir, studies),
        "## What differs from the paper's setting", "",
        ("The paper's column is its published setup (Jiang et al. 2019); the others are read "
        "from the timed runs' params and tags."), "",
        *D.setting_section(studies), "",
        "## Studies, wall time and compute", "",
        *D.studies_section(studies), "",
        "## Reproduce", "",
        *D.reproduce_section(studies, command, uri_flag, options.resamples, options.seed), "",
        "## MLflow run ids", "",
        ("Every number above comes from these runs (the compared arms at the primary target; "
        "tuning and reference runs listed apart)."), "",
        *D.run_ids_section(studies), "",
    ]
    return "\n".join(lines).rstrip() + "\n", [*claim_rows, *tight, *random_rows, *per_rate,
                                               *wide_rows]


def _diff(value) -> str:
    return "-" if value is None else f"{value:+.4f}"


# --- command line ------------------------------------------------------------------------------

def add_verdict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study-run", action="append", default=None,
                        metavar="ROLE=RUN_ID_OR_STUDY",
                        help="the sweep parent run (or study name) of one study, ROLE one of "
                        f"{', '.join(STUDY_ROLES)}; repeat per study (default: the latest sweep "
                        "of the study named like the role, 'not run yet' when there is none)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: "
                        "$MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    parser.add_argument("--experiment", default=None,
                        help=f"MLflow experiment the studies are looked up in (default: "
                        f"{DEFAULT_EXPERIMENT})")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the Markdown file; its figures go "
                        f"into the folder of the same name (default: {DEFAULT_OUT})")
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR,
                        help=f"the analyses' full outputs (default: {DEFAULT_WORK_DIR})")
    parser.add_argument("--resamples", type=int, default=PROTOCOL_RESAMPLES,
                        help=f"bootstrap resamples (default: {PROTOCOL_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    parser.add_argument("--reuse-analysis", action="store_true",
                        help="use each sweep's latest finished analysis run instead of "
                        "analysing again")
    parser.add_argument("--include-unfinished", action="store_true",
                        help="analyse a sweep whose parent run has not finished (running or "
                        "interrupted) instead of calling it not run yet")
    parser.add_argument("--no-log", action="store_true",
                        help="do not log the analyses as MLflow runs")


def options_from_args(args: argparse.Namespace) -> VerdictOptions:
    return VerdictOptions(study_runs=parse_study_runs(args.study_run),
                          tracking_uri=args.tracking_uri, experiment=args.experiment,
                          out=args.out, work_dir=args.work_dir, resamples=args.resamples,
                          seed=args.seed, log_to_mlflow=not args.no_log,
                          reuse_analysis=args.reuse_analysis,
                          include_unfinished=args.include_unfinished)


def run_verdict_command(args: argparse.Namespace) -> int:
    result = verdict(options_from_args(args))
    for row in result.claims[:6]:
        print(f"{row.verdict:>16}  {row.claim}  {row.speedup}")
    print(f"wrote {result.path} (figures in {result.path.with_suffix('')})")
    return 0
