#!/usr/bin/env bash
# The s9 measuring calls (issue 19, third push), from /work/main's checkout on the device, carrying `wheels`
# (benchmarks/s8_wheels.sh /work/main/wheels: med/ medqa's wheels, uns/ Unsloth's set, tt/ torchtune's):
#   call 1, levers:  STAGES=check,learn,train bash benchmarks/s9_call.sh
#   call 2, table:   STAGES=table bash benchmarks/s9_call.sh   (rows a, b_peft, b, c and Unsloth at both dropouts;
#                    torchtune's LoRA too where `wheels/tt` is carried: TT_S seconds of the budget are kept for it)
# Every stage has its own time limit, so one that hangs does not take the call; outputs go to $OUT.
set -uo pipefail
steps=${STEPS:-15} warmup=${WARMUP:-5} root=/tmp/bench
stages=,${STAGES:-check,learn,train},
budget=${BUDGET_S:-585}  # the train stage and the Unsloth rows get what is left of it
sets=(med); [[ $stages == *,table,* ]] && sets+=(uns)  # Unsloth's wheels for the table only
source "$(dirname "$0")/call_env.sh" "${sets[@]}"

if [[ $stages == *,check,* ]]; then  # flash vs flex on the whole backbone (readout loss), every variant's worst grad
  med timeout "${CHECK_S:-150}" python3 benchmarks/block_levers.py --check-only --json "$out/check.json" \
    --variants peft,fused_blocks,peft+flash,fused_blocks+flash,fused_blocks+cnr,fused_blocks+flash+cnr \
    > "$out/check.log" 2>&1
  echo "check rc=$? at ${SECONDS}s"; grep -A8 "^variant" "$out/check.log" | cut -c1-200
fi
if [[ $stages == *,block,* ]]; then  # backbone forward + backward, seed's dropout
  med timeout "${BLOCK_S:-120}" python3 benchmarks/block_levers.py --dropouts 0.05 --iters 10 --json "$out/block.json" \
    --variants fused_blocks,fused_blocks+cnr,fused_blocks+flash,fused_blocks+flash+cnr > "$out/block.log" 2>&1
  echo "block rc=$? at ${SECONDS}s"; grep -A6 "^variant" "$out/block.log"
fi
if [[ $stages == *,learn,* ]]; then
  med timeout "${LEARN_S:-90}" python3 benchmarks/levers_learn.py --shape toy \
    --variants "${LEARN_VARIANTS:-fused_blocks + static_packs (flex) + compile_norm_rope,+ static_packs + compile_norm_rope}" \
    > "$out/learn.log" 2>&1
  echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -5
fi
if [[ $stages == *,train,* ]]; then  # whole steps through medqa's trainer, rows alternating with b
  # flash rows first: the flex rows compile flex's kernels on a cold machine (~80 s)
  med timeout "$((budget - SECONDS))" python3 benchmarks/train_throughput.py --root "$root" \
    --rows "${ROWS:-b_flash_static,b_flash_cnr,b_flash_cnr_256,b,b_cnr}" --steps "$steps" --warmup "$warmup" \
    --row-timeout "${ROW_TIMEOUT:-110}" --json "$out/train.json" > "$out/train.log" 2>&1
  echo "train rc=$? at ${SECONDS}s"; tail -10 "$out/train.log"
fi
if [[ $stages == *,table,* ]]; then  # the one-call table: medqa's rows, then Unsloth on b_peft's examples and shape
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site-med "$W"/uns/bitsandbytes-*.whl \
    > /dev/null 2>&1  # row c: s8_wheels.sh keeps bitsandbytes in Unsloth's folder only
  med timeout "${TABLE_S:-360}" python3 benchmarks/train_throughput.py --root "$root" --rows "${ROWS:-b,c,a:3,b_peft}" \
    --steps "$steps" --warmup "$warmup" --row-timeout "${ROW_TIMEOUT:-150}" --json "$out/train.json" \
    > "$out/train.log" 2>&1
  echo "table rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
  med timeout 60 python3 benchmarks/unsloth_row.py --write-examples "$root/examples.json" --root "$root" \
    > "$out/examples.log" 2>&1
  echo "examples rc=$? at ${SECONDS}s"
  keep=0; [[ -d $W/tt ]] && keep=${TT_S:-240}  # torchtune's rows after Unsloth's
  variants=(${U_VARIANTS:-u_drop05 u_drop0})  # U_VARIANTS=u_drop05: the seed's dropout only
  for variant in "${variants[@]}"; do
    left=$((budget - keep - SECONDS)); [[ $variant != "${variants[-1]}" ]] && left=$((left / 2))
    ((left > 40)) || { echo "unsloth $variant skipped: ${left}s left"; continue; }
    PYTHONPATH=/tmp/site-uns:/tmp/site-med timeout "$left" python3 benchmarks/unsloth_row.py \
      --checkpoint "$root/llama32_3b" --examples "$root/examples.json" --variants "$variant" --steps "$steps" \
      --warmup "$warmup" --row-timeout "$((left - 5))" --root "$root" --json "$out/unsloth.jsonl" \
      >> "$out/unsloth.log" 2>&1
    echo "unsloth $variant rc=$? at ${SECONDS}s"; grep '^{' "$out/unsloth.log" | tail -1 | cut -c1-600
  done
  if [[ -d $W/tt ]]; then  # torchtune 0.6.1 on the same examples, with uns/'s torchao unless tt/ has its own
    wheels=("$W"/tt/*.whl); compgen -G "$W/tt/torchao-*.whl" > /dev/null || wheels+=("$W"/uns/torchao-*.whl)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-tt "${wheels[@]}" \
      > /tmp/pip-tt.log 2>&1 || { echo "pip tt failed"; tail -5 /tmp/pip-tt.log; }
    for variant in ${TT_VARIANTS:-tt tt_compile}; do
      left=$((budget - SECONDS)); [[ $variant == tt ]] && left=$((left / 2))
      ((left > 40)) || { echo "torchtune $variant skipped: ${left}s left"; continue; }
      PYTHONPATH=/tmp/site-tt:/tmp/site-med timeout "$left" python3 benchmarks/torchtune_row.py \
        --checkpoint "$root/llama32_3b" --examples "$root/examples.json" --variants "$variant" --steps "$steps" \
        --warmup "$warmup" --row-timeout "$((left - 5))" --json "$out/torchtune.jsonl" >> "$out/torchtune.log" 2>&1
      echo "torchtune $variant rc=$? at ${SECONDS}s"; grep '^{' "$out/torchtune.log" | tail -1 | cut -c1-600
    done
  fi
fi
