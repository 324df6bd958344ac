#!/usr/bin/env bash
# The s8 measuring call (issue 19, peers): Unsloth on row b_peft's shape, batch and examples, row b_peft itself, and
# torchtune's LoRA check, in one call. Wheel sets under $W (default .whl), built by s8_wheels.sh: med/ (medqa's),
# uns/ (Unsloth's: trl 1.15, datasets 4.8.5, bitsandbytes), tt/ (torchtune 0.6.1's with torchao 0.15: TT_RECIPE=1,
# as the check loads the recipe). Each set goes to its own --target folder: Unsloth pins trl<=1.15 and datasets<5,
# medqa runs trl 1.16 and datasets 5.2.
# From /work/main's checkout on the device, carrying `wheels` (TT_RECIPE=1 s8_wheels.sh /work/main/wheels):
#   cp wheels/bench/* benchmarks/ && W=wheels BUDGET_S=465 timeout 488 bash benchmarks/s8_call.sh
# Stages stop at their own limits and the next starts; the last gets what is left of BUDGET_S. Outputs go to $OUT.
set -uo pipefail
out=${OUT:-gpu-out}
W=${W:-.whl}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
steps=${STEPS:-15} warmup=${WARMUP:-5} root=/tmp/bench budget=${BUDGET_S:-480}
for set in med uns tt; do
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "/tmp/site-$set" \
    "$W/$set"/*.whl > "/tmp/pip-$set.log" 2>&1 || { echo "pip $set failed"; tail -5 "/tmp/pip-$set.log"; }
done
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers, peft, sys; print(sys.version.split()[0], torch.__version__, \
transformers.__version__, peft.__version__)"; } | tee "$out/env.txt"
echo "installed at ${SECONDS}s"

PYTHONPATH=/tmp/site-tt:/tmp/site-uns:/tmp/site-med timeout 60 python3 benchmarks/torchtune_check.py \
  > "$out/torchtune.log" 2>&1
echo "torchtune rc=$? at ${SECONDS}s"; grep RESULT "$out/torchtune.log" || tail -3 "$out/torchtune.log"

PYTHONPATH=/tmp/site-med:$PWD timeout 90 python3 benchmarks/unsloth_row.py --write-examples "$root/examples.json" \
  --root "$root" > "$out/examples.log" 2>&1
echo "examples rc=$? at ${SECONDS}s"; tail -2 "$out/examples.log"

unsloth() {  # $1 variant, $2 seconds
  # site-med after site-uns: its trl/datasets are shadowed; it lends what the image lacks (pydantic, platformdirs)
  PYTHONPATH=/tmp/site-uns:/tmp/site-med timeout "$2" python3 benchmarks/unsloth_row.py --checkpoint "$root/llama32_3b" \
    --examples "$root/examples.json" --variants "$1" --steps "$steps" --warmup "$warmup" --row-timeout "$(($2 - 5))" \
    --root "$root" --json "$out/unsloth.jsonl" >> "$out/unsloth.log" 2>&1
  echo "unsloth $1 rc=$? at ${SECONDS}s"; grep '^{' "$out/unsloth.log" | tail -1 | cut -c1-900
}
unsloth u_drop05 "${U_S:-130}"

PYTHONPATH=/tmp/site-med:$PWD timeout "${PEFT_S:-140}" python3 benchmarks/train_throughput.py --rows b_peft \
  --steps "$steps" --warmup "$warmup" --row-timeout "$((${PEFT_S:-140} - 5))" --root "$root" \
  --json "$out/train.json" > "$out/train.log" 2>&1
echo "b_peft rc=$? at ${SECONDS}s"; tail -3 "$out/train.log"

left=$((budget - SECONDS))
if ((left > 40)); then unsloth u_drop0 "$left"; else echo "u_drop0 skipped: ${left}s left"; fi
