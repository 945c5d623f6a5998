"""Ending what an interrupted or crashed sweep left behind, so it can be resumed.

On start (and after Ctrl-C) a sweep makes the record consistent again: RUNNING trials of dead
workers become FAIL (`interrupted`, so the point is re-run), their RUNNING child runs become
KILLED, and a parent run left RUNNING by a sweep killed outright is ended. A journal file is one
machine's study with one coordinator: every RUNNING trial found at start is stale. A database
storage is shared by machines: only trials whose worker stopped sending heartbeats are stale.
"""

from __future__ import annotations

from sbbench import tracking
from sbbench.sweep import trial_records as names
from sbbench.sweep.context import SweepContext

WORKER_STOPPED_REASON = "worker process stopped before it could end the run"


class Recovery:
    def __init__(self, context: SweepContext):
        self.context = context

    def recover_interrupted(self, local_trials: set[int]) -> int:
        """End what a crashed or killed earlier sweep left RUNNING (trials this invocation runs
        itself, `local_trials`, are left alone). Returns how many were ended."""
        from optuna.trial import TrialState

        context = self.context
        recovered = 0
        if not context.shared_by_machines:
            self._consume_stale_waiting()
            for trial in context.trials():
                if trial.state != TrialState.RUNNING or trial.number in local_trials or \
                        trial.user_attrs.get(names.ATTR_AWAITING):
                    continue
                self.mark_interrupted(trial.number, trial._trial_id,
                                      trial.user_attrs.get(names.ATTR_RUN_ID))
                recovered += 1
            self.end_stale_parents()
            return recovered + self.end_orphan_runs(local_trials)
        import optuna

        optuna.storages.fail_stale_trials(context.study)
        for trial in context.trials():
            # Failed as stale (by this or another machine): a finished trial takes no more
            # attributes, so "FAIL without a failure kind" itself means interrupted.
            if trial.state == TrialState.FAIL and \
                    names.ATTR_FAILURE_KIND not in trial.user_attrs and \
                    trial.user_attrs.get(names.ATTR_RUN_ID):
                recovered += self.kill_run(trial.user_attrs[names.ATTR_RUN_ID])
        return recovered + self.end_orphan_runs(local_trials)

    def _consume_stale_waiting(self) -> None:
        """A coordinator killed between enqueue_trial and ask leaves a WAITING trial; ask()
        pops WAITING trials first, so it would hand its point to a later, unrelated ask. Pop
        each one now and fail it (interrupted): its point is simply pending again."""
        from optuna.trial import TrialState

        waiting = sum(1 for t in self.context.trials() if t.state == TrialState.WAITING)
        for _ in range(waiting):
            trial = self.context.study.ask()
            self.mark_interrupted(trial.number, trial._trial_id, None)

    def mark_interrupted(self, number: int, trial_id: int, run_id: str | None) -> None:
        """FAIL the trial as interrupted (its point runs again) and end its run KILLED."""
        from optuna.trial import TrialState

        from optuna.exceptions import UpdateFinishedTrialError

        storage = self.context.storage
        try:
            storage.set_trial_user_attr(trial_id, names.ATTR_INTERRUPTED, True)
            storage.set_trial_user_attr(trial_id, names.ATTR_FAILURE_KIND, "interrupted")
            self.context.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        except UpdateFinishedTrialError:
            pass  # another machine failed it as stale first: interrupted all the same
        if run_id:
            self.kill_run(run_id)

    def kill_run(self, run_id: str, reason: str = WORKER_STOPPED_REASON) -> bool:
        client = self.context.client
        run = client.get_run(run_id)
        if run.info.status != "RUNNING":
            return False
        client.set_tag(run_id, tracking.TAG_FAILURE_KIND, "interrupted")
        client.set_tag(run_id, tracking.TAG_FAILURE_REASON, reason)
        client.set_terminated(run_id, status="KILLED")
        return True

    def end_orphan_runs(self, local_trials: set[int]) -> int:
        """End KILLED every RUNNING child run of this study whose trial is not running.

        Covers the runs a trial could not name: a worker stopped between creating its child
        run and recording `mlflow_run_id` on the trial. Found by tags (`sbbench.study`,
        `sbbench.trial`), so runs under an earlier parent (an earlier `mlflow run`) count too.
        A trial RUNNING in the storage (another machine's live worker) keeps its run.
        """
        from optuna.trial import TrialState

        context = self.context
        experiment_ids = context.experiment_ids()
        if not experiment_ids:
            return 0
        trials = {t.number: t for t in context.trials()}
        ended, token = 0, None
        while True:
            page = context.client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{names.TAG_STUDY}` = '{context.study_name}' and "
                              "attributes.status = 'RUNNING'",
                max_results=1000, page_token=token)
            for run in page:
                number = run.data.tags.get(names.TAG_TRIAL, "")
                if not number.isdigit() or int(number) in local_trials:
                    continue
                trial = trials.get(int(number))
                if trial is not None and trial.state == TrialState.RUNNING and not \
                        trial.user_attrs.get(names.ATTR_AWAITING):
                    continue
                ended += self.kill_run(run.info.run_id)
            token = page.token
            if not token:
                return ended

    def end_stale_parents(self) -> None:
        """An earlier sweep of this study killed outright (kill -9 of `mlflow run` and all) left
        its parent RUNNING; under `mlflow run` each invocation has a new parent, so end it."""
        context = self.context
        experiment_ids = context.experiment_ids()
        if not experiment_ids:
            return
        for run in context.client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{names.TAG_KIND}` = 'sweep' and "
                              f"tags.`{names.TAG_STUDY}` = '{context.study_name}' and "
                              "attributes.status = 'RUNNING'", max_results=1000):
            if run.info.run_id != context.parent_run_id:
                self.kill_run(run.info.run_id, "sweep process stopped before it could end "
                                               "the run (resumed under a new parent)")
