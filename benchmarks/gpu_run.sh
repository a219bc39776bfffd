#!/usr/bin/env bash
# The one GPU check of the trainer (run on the device machine from a copy of the repository;
# see benchmarks/trainer.md). Writes JSON/logs under $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MODEL=${TUNESMITH_MINILM:-}
export HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
export PYTHONPATH=$PWD/src:${EXTRA_SITE:-/tmp/site}
[ -n "$MODEL" ] && export TUNESMITH_MINILM=$MODEL
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, sqlalchemy; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
timeout 100 python3 -m pytest -q -m gpu tests/test_train_gpu.py -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log"
B="python3 benchmarks/bench_finetune.py --texts 4096 --epochs 3"
timeout 80 $B --device cuda --precision bf16 --batch 64 --json "$OUT/gpu_bf16_b64.json" 2>&1 | grep -v Loading
timeout 80 $B --device cuda --precision fp32 --batch 64 --json "$OUT/gpu_fp32_b64.json" 2>&1 | grep -v Loading
timeout 80 $B --device cuda --precision bf16 --batch 256 --json "$OUT/gpu_bf16_b256.json" 2>&1 | grep -v Loading
timeout 80 python3 benchmarks/bench_finetune.py --device cpu --threads 2 --texts 384 --epochs 2 --batch 64 --json "$OUT/devcpu_2threads.json" 2>&1 | grep -v Loading
timeout 100 python3 examples/finetune_text.py --device cuda --texts 1000 --trials 4 --epochs 3 --train-blocks 6 --checkpoints /tmp/ck --json "$OUT/example_gpu.json" 2>&1 | grep -v Loading
echo done
