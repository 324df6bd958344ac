#!/usr/bin/env bash
# s12 call 1 (issue 19): is the candidate of s11 call 5 (each decoder layer compiled over the whole-block nodes,
# row b_clayers_nocnr) a real gain, and does it still train the adapter on the GPU? Carries `wheels`
# (benchmarks/s8_wheels.sh). The table call after it is s9_call.sh's `table` stage.
#   bash benchmarks/s12_call.sh
# 1. levers_learn on the toy shape: b's levers, then the candidate's (B must leave zero, loss must fall);
# 2. b and the candidate in ABBA order, three pairs, one invocation (rows keep their order and repeats).
set -uo pipefail
out=${OUT:-gpu-out}
W=${W:-wheels}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-med "$W"/med/*.whl \
  > /tmp/pip-med.log 2>&1 || { echo "pip med failed"; tail -5 /tmp/pip-med.log; }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  PYTHONPATH=/tmp/site-med python3 -c "import torch, transformers, peft, trl, sys; print(sys.version.split()[0], \
torch.__version__, transformers.__version__, peft.__version__, trl.__version__)"; } | tee "$out/env.txt"
echo "installed at ${SECONDS}s"
med() { PYTHONPATH=/tmp/site-med:$PWD "$@"; }
med timeout "${LEARN_S:-100}" python3 benchmarks/levers_learn.py --shape toy \
  --variants "+ static_packs + compile_norm_rope,+ static_packs + compile_layers" > "$out/learn.log" 2>&1
echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -5
X=${X:-b_clayers_nocnr}
med timeout "${TRAIN_S:-420}" python3 benchmarks/train_throughput.py --root /tmp/bench \
  --rows "${ROWS:-b,$X,$X,b,b,$X}" --steps "${STEPS:-10}" --warmup "${WARMUP:-4}" \
  --row-timeout "${ROW_TIMEOUT:-150}" --json "$out/train.json" > "$out/train.log" 2>&1
echo "train rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
