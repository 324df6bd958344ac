#!/usr/bin/env bash
# The s10 measuring call (issue 19: QLoRA's gap), from /work/main's checkout on the device, carrying
# `wheels/med` (benchmarks/gpu_wheels.sh wheels/med: medqa's wheels with bitsandbytes' CUDA 13 library):
#   bash benchmarks/s10_call.sh
# rows b, c and QLoRA's levers one at a time (c_s9: c before them; c_bf16: bf16 layers; c_blocks: the blocks over
# 4-bit bases), a profile of b and c, then levers_learn on QLoRA with and without the blocks. Outputs go to $OUT.
set -uo pipefail
out=${OUT:-gpu-out}
W=${W:-wheels}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
steps=${STEPS:-10} warmup=${WARMUP:-3} root=/tmp/bench budget=${BUDGET_S:-585}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-med "$W"/med/*.whl \
  > /tmp/pip-med.log 2>&1 || { echo "pip failed"; tail -5 /tmp/pip-med.log; }
med() { PYTHONPATH=/tmp/site-med:$PWD "$@"; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  med python3 -c "import torch, transformers, peft, trl, bitsandbytes, sys; print(sys.version.split()[0], \
torch.__version__, transformers.__version__, peft.__version__, trl.__version__, bitsandbytes.__version__)"; } \
  | tee "$out/env.txt"
echo "installed at ${SECONDS}s"
med timeout "$((budget - 100 - SECONDS))" python3 benchmarks/train_throughput.py --root "$root" \
  --rows "${ROWS:-b,c,c_s9,c_bf16,c_blocks}" --steps "$steps" --warmup "$warmup" --row-timeout "${ROW_TIMEOUT:-150}" \
  --profile "$out/profile" --profile-rows "${PROFILE_ROWS:-b,c}" --json "$out/train.json" > "$out/train.log" 2>&1
echo "train rc=$? at ${SECONDS}s"; tail -8 "$out/train.log"
med timeout "$((budget - SECONDS))" python3 benchmarks/levers_learn.py --shape toy --quant nf4 \
  --variants "fused_blocks + static_packs (flex) + compile_norm_rope,no blocks + static_packs (flex) + compile_norm_rope" \
  > "$out/learn.log" 2>&1
echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -4
