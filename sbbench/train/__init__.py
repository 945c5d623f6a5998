"""One training run: loop, phase clock, evaluation schedule, stopping, MLflow record."""
