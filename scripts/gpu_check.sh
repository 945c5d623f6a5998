#!/usr/bin/env bash
# What a newly lent GPU machine should verify, in under 10 minutes, from the repository root:
#   scripts/gpu_check.sh            (PYTHON=.venv/bin/python by default; OUT=a folder for results)
# 1. the GPUs and torch see each other; 2. tests/gpu; 3. `sbbench bench --quick` on CUDA;
# 4. with two or more GPUs: a two-device sweep (`--devices cuda:0,cuda:1`), each trial on its own
#    GPU (its sbbench.device tag and its log's CUDA_VISIBLE_DEVICES). Exit 0 only if all pass.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-$(mktemp -d /tmp/sbbench-gpu-check.XXXXXX)}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
step() { echo; echo "== $* ($(date -u +%H:%M:%S))"; }

step "1/4 devices"
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv | tee "$OUT/gpus.csv"
GPUS="$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print(torch.cuda.device_count())')"
echo "torch sees $GPUS GPU(s)"

step "2/4 tests/gpu"
timeout 240 "$PYTHON" -m pytest -q tests/gpu -p no:cacheprovider 2>&1 | tee "$OUT/tests_gpu.txt"

step "3/4 sbbench bench --quick (CUDA)"
timeout 240 "$PYTHON" -m sbbench.cli bench --quick --json "$OUT/bench.json" \
    --tracking-uri "sqlite:///$OUT/bench-mlflow.db" 2>&1 | tee "$OUT/bench.txt"
"$PYTHON" - "$OUT/bench.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
assert "cuda" in text.lower() or "nvidia" in text.lower(), "the benchmark did not run on CUDA"
print("bench ran on CUDA")
PY

if [ "$GPUS" -ge 2 ]; then
    step "4/4 two-device sweep"
    cat > "$OUT/two_devices.yaml" <<'YAML'
name: gpu_check_two_devices
sampler: grid
workload: {dataset: mnist1d, train_size: 4000, val_size: 500, test_size: 500, epochs: 2,
           eval_every_examples: 2000, batch_size: 128, device: cuda}
grid: {method: [traditional, sb], beta: [3]}
seeds: [0, 1]
objective: {kind: time_to_target, target_error: 0.8}
YAML
    (cd "$OUT" && timeout 240 "$PYTHON" -m sbbench.cli sweep --study two_devices.yaml \
        --devices cuda:0,cuda:1 --storage "journal:$OUT/two_devices.journal" \
        --tracking-uri "sqlite:///$OUT/sweep-mlflow.db" --no-analyze --no-progress) \
        2>&1 | tee "$OUT/sweep.txt"
    "$PYTHON" - "$OUT" <<'PY'
import glob, sys
from mlflow import MlflowClient
out = sys.argv[1]
client = MlflowClient(tracking_uri=f"sqlite:///{out}/sweep-mlflow.db")
experiment = client.get_experiment_by_name("sbbench")
runs = [r for r in client.search_runs([experiment.experiment_id]) if "sbbench.trial" in r.data.tags]
devices = sorted(r.data.tags["sbbench.device"] for r in runs)
assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs), devices
assert set(devices) == {"cuda:0", "cuda:1"}, devices
for log in glob.glob(f"{out}/.sbbench/logs/gpu_check_two_devices/trial-*.log"):
    text = open(log).read()
    assert "CUDA_VISIBLE_DEVICES='0'" in text or "CUDA_VISIBLE_DEVICES='1'" in text, log
print("two-device sweep: trials on", devices)
PY
else
    step "4/4 two-device sweep: skipped (one GPU)"
fi
echo; echo "GPU check passed; results in $OUT"
