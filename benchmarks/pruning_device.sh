#!/usr/bin/env bash
# The early-stopping benchmark (bench_pruning.py) on the GPU device machine, both tasks at once:
#   tabular:  --seeds 16 on 10 CPU processes (1 thread each)
#   finetune: --seeds 8 on 6 processes sharing the GPU (all-MiniLM-L6-v2, VADER words)
# each with --time-limit (the seeds whose runs all finished are reported). Run from the
# repository root with the wheels and the fp16 copy of the model in .whl/ (see benchmarks/pruning.md):
#   bash benchmarks/pruning_device.sh            # writes under $OUT
#   PRUNING_QUICK=1 SKIP_INSTALL=1 PY=.venv/bin/python OUT=/tmp/out bash benchmarks/pruning_device.sh
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PY=${PY:-python3}
LIMIT=${LIMIT:-450}
if [ -z "${SKIP_INSTALL:-}" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 4
fi
[ -d .whl/minilm16 ] && export TUNESMITH_MINILM=$PWD/.whl/minilm16
export PYTHONPATH=$PWD/src:/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
# TAB_ARGS= or FT_ARGS= (empty) skips that task; e.g. a continuation of the fine-tuning run:
#   TAB_ARGS= FT_ARGS="--seeds 4 --jobs 6 --resume benchmarks/results/pruning-finetune-h100.jsonl" LIMIT=200
# or the 3,916-word validation variant with some rows (see benchmarks/pruning.md):
#   TAB_ARGS= FT_ARGS="--texts 4894 --train-frac 0.2 --seeds 8 --jobs 12 --methods 'TPE + ASHA' 'Optuna TPE'"
TAB=${TAB_ARGS-"--seeds 16 --jobs 10"}; FT=${FT_ARGS-"--seeds 8 --jobs 6"}
if [ -n "${PRUNING_QUICK:-}" ]; then TAB="--quick --seeds 2 --jobs 1"; FT="--quick --seeds 1 --jobs 1"; LIMIT=100; fi
{
  date -u; env -u OMP_NUM_THREADS nproc; lscpu | grep -E "Model name|^CPU\(s\)|Thread" ; free -g | head -2
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  $PY -c "import torch, transformers, sklearn, optuna, sqlalchemy; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__, 'sklearn', sklearn.__version__, 'optuna', optuna.__version__)"
} > "$OUT/env.log" 2>&1
cat "$OUT/env.log"
$PY -c "import optuna, tunesmith, vaderSentiment" || exit 5
(nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 20 > "$OUT/smi.log" 2>&1 &
 echo $! > /tmp/smi.pid)
PIDS=()
for task in tabular finetune; do
  if [ $task = tabular ]; then A=$TAB; else A=$FT; fi
  [ -z "$A" ] && continue
  eval "ARGS=($A)"  # keeps quoted method names ('random + ASHA') as one argument each
  timeout -k 10 $((LIMIT + 40)) $PY benchmarks/bench_pruning.py --task $task "${ARGS[@]}" --time-limit "$LIMIT" \
    --results "$OUT/$task.jsonl" --report "$OUT/$task.md" > "$OUT/$task.log" 2>&1 &
  PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p"; echo "rc $?"; done
kill "$(cat /tmp/smi.pid)" 2>/dev/null
date -u
for task in tabular finetune; do [ -f "$OUT/$task.log" ] && grep -v "^  {" "$OUT/$task.log" | tail -40; done
