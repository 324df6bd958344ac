#!/usr/bin/env bash
# s16 calls (issue 19), from /work/main's checkout on the device, carrying `wheels` (benchmarks/s8_wheels.sh DEST).
#   call 1, graphs:  STAGE=graphs bash benchmarks/s16_call.sh
#     b_graphs (train=gpu + train.cuda_graphs: each static pack's compiled step captured once, then replayed) alone
#     first with a row limit of 330 s, then b; then levers_learn with cuda_graphs over compiled layers.
#   call 2, table:   STAGE=table bash benchmarks/s16_call.sh   (Unsloth and torchtune first, then medqa's rows;
#     TABLE_ROWS: medqa's rows; s16 ran out of its 585 s before b_peft: next time TABLE_ROWS=b_peft,b,c,a:3)
set -uo pipefail
budget=${BUDGET_S:-585} root=/tmp/bench steps=${STEPS:-15} warmup=${WARMUP:-5}
case ${STAGE:-graphs} in
graphs)
  source "$(dirname "$0")/call_env.sh" med
  med timeout "${TRAIN_S:-470}" python3 benchmarks/train_throughput.py --root "$root" \
    --rows "${ROWS:-b_graphs,b}" --steps "$steps" --warmup "${GWARMUP:-12}" \
    --row-timeout "${ROW_TIMEOUT:-330}" --json "$out/train.json" > "$out/train.log" 2>&1
  echo "train rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/train.log" | tail -12 | cut -c1-900
  learn_left "+ static_packs + compile_norm_rope + compile_layers + cuda_graphs" ;;
table)
  source "$(dirname "$0")/call_env.sh" med uns
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site-med "$W"/uns/bitsandbytes-*.whl \
    > /dev/null 2>&1  # row c: s8_wheels.sh keeps bitsandbytes in Unsloth's folder only
  med timeout 90 python3 benchmarks/unsloth_row.py --write-examples "$root/examples.json" --root "$root" \
    > "$out/examples.log" 2>&1
  echo "examples rc=$? at ${SECONDS}s"
  PYTHONPATH=/tmp/site-uns:/tmp/site-med timeout "${U_S:-150}" python3 benchmarks/unsloth_row.py \
    --checkpoint "$root/llama32_3b" --examples "$root/examples.json" --variants u_drop05 --steps "$steps" \
    --warmup "$warmup" --row-timeout "$((${U_S:-150} - 5))" --root "$root" --json "$out/unsloth.jsonl" \
    > "$out/unsloth.log" 2>&1
  echo "unsloth rc=$? at ${SECONDS}s"; grep '^{' "$out/unsloth.log" | tail -1 | cut -c1-600
  wheels=("$W"/tt/*.whl "$W"/uns/torchao-*.whl)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site-tt "${wheels[@]}" \
    > /tmp/pip-tt.log 2>&1 || { echo "pip tt failed"; tail -5 /tmp/pip-tt.log; }
  PYTHONPATH=/tmp/site-tt:/tmp/site-med timeout "${TT_S:-110}" python3 benchmarks/torchtune_row.py \
    --checkpoint "$root/llama32_3b" --examples "$root/examples.json" --variants tt_compile --steps "$steps" \
    --warmup "$warmup" --row-timeout "$((${TT_S:-110} - 5))" --json "$out/torchtune.jsonl" > "$out/torchtune.log" 2>&1
  echo "torchtune rc=$? at ${SECONDS}s"; grep '^{' "$out/torchtune.log" | tail -1 | cut -c1-600
  med timeout "$((budget - SECONDS))" python3 benchmarks/train_throughput.py --root "$root" \
    --rows "${TABLE_ROWS:-b,c,a:3,b_peft}" --steps "$steps" --warmup "$warmup" --row-timeout "${ROW_TIMEOUT:-150}" \
    --json "$out/train.json" > "$out/train.log" 2>&1
  echo "table rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/train.log" | tail -9 | cut -c1-700 ;;
esac
