"""Sweeps: study files, Optuna storage and worker processes, each trial an MLflow child run."""
