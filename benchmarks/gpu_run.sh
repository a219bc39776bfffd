#!/usr/bin/env bash
# The one GPU check of the trainer (run on the device machine from a copy of the repository;
# see benchmarks/gpu-packing.md). Writes JSON/logs under $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
export PYTHONPATH=$PWD/src:${EXTRA_SITE:-/tmp/site}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, sqlalchemy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
timeout 100 python3 -m pytest -q -m gpu tests/test_train_gpu.py -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"
B="python3 benchmarks/bench_finetune.py --texts 4096 --epochs 3"
for cfg in "bf16 256 0" "fp32 256 0" "bf16 64 64" "fp32 64 64"; do
  set -- $cfg
  timeout 60 $B --device cuda --precision $1 --batch $2 --seq-len $3 --json "$OUT/gpu_$1_b$2_s$3.json" 2>&1 | grep -v Loading
done
timeout 80 python3 benchmarks/bench_finetune.py --device cpu --threads 2 --texts 192 --epochs 2 --batch 64 --seq-len 64 --json "$OUT/devcpu_b64_s64.json" 2>&1 | grep -v Loading
echo done
