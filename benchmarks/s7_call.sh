#!/usr/bin/env bash
# The s7 measuring call (issue 19, second half), run from an unpacked `git archive` of the branch with the wheels of
# gpu_wheels.sh in .whl/. STAGES: comma list of check, train, learn, block (default check,train,learn).
# Every stage has its own time limit; outputs go to $OUT (at most 8 files come back).
set -uo pipefail
out=${OUT:-gpu-out}
mkdir -p "$out/profile"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site/site-packages .whl/*.whl > /tmp/pip.log 2>&1 || { tail -5 /tmp/pip.log; exit 1; }
export PYTHONPATH=/tmp/site/site-packages:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, trl, sys; print(sys.version.split()[0], torch.__version__, \
transformers.__version__, peft.__version__, trl.__version__)"
stages=,${STAGES:-check,train,learn},
if [[ $stages == *,check,* ]]; then
  timeout 120 python3 benchmarks/static_step_check.py --shape toy --json "$out/check.json" > "$out/check.log" 2>&1
  echo "check rc=$?"; grep -v Warning "$out/check.log" | tail -4
fi
if [[ $stages == *,train,* ]]; then
  timeout "${TRAIN_S:-470}" python3 benchmarks/train_throughput.py --rows "${ROWS:-b_peft,b_flash,b_static,b_graphs,c,c_graphs,a:3}" \
    --steps "${STEPS:-20}" --warmup "${WARMUP:-8}" --row-timeout "${ROW_TIMEOUT:-120}" --profile "$out/profile" \
    --profile-rows "${PROFILE_ROWS:-b_flash,c}" --json "$out/train.json" > "$out/train.log" 2>&1
  echo "train rc=$?"; tail -10 "$out/train.log"
fi
if [[ $stages == *,block,* ]]; then
  timeout "${BLOCK_S:-150}" python3 benchmarks/block_levers.py --variants "${BLOCK_VARIANTS:-peft,fused_blocks,fused_blocks+flash}" \
    --dropouts 0.0 --iters 3 --json "$out/block.json" > "$out/block.log" 2>&1
  echo "block rc=$?"; tail -8 "$out/block.log"
fi
if [[ $stages == *,learn,* ]]; then
  timeout "${LEARN_S:-150}" python3 benchmarks/levers_learn.py --shape toy \
    --variants "${LEARN_VARIANTS:-fused_blocks + flash_varlen,+ static_packs,+ cuda_graphs}" > "$out/learn.log" 2>&1
  echo "learn rc=$?"; grep -v "it/s" "$out/learn.log" | tail -6
fi
