#!/usr/bin/env bash
# s11 call 1 (issue 19): the joint-projections lever, from /work/main's checkout on the device, carrying `wheels`
# (benchmarks/s8_wheels.sh). The table call after it is s9_call.sh's `table` stage (see RESULTS.md, s11).
#   bash benchmarks/s11_call.sh
# 1. b and b_joint in ABBA order (the same code ran ~9% faster the second time on one machine: alternate, repeat);
# 2. the fp32 check on the 3B shape: each variant's loss and worst LoRA gradient against fp32 (block_levers.py);
# 3. levers_learn: b's levers with and without joint_projections still train the adapter (toy shape).
set -uo pipefail
source "$(dirname "$0")/call_env.sh" med
med timeout "${TRAIN_S:-330}" python3 benchmarks/train_throughput.py --root /tmp/bench \
  --rows "${ROWS:-b,b_joint,b_joint,b,b,b_joint}" --steps "${STEPS:-10}" --warmup "${WARMUP:-4}" \
  --row-timeout "${ROW_TIMEOUT:-120}" --json "$out/train.json" > "$out/train.log" 2>&1
echo "train rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
med timeout "${CHECK_S:-120}" python3 benchmarks/block_levers.py --check-only --json "$out/check.json" \
  --variants peft,fused_blocks+flash+cnr,fused_blocks+flash+cnr+joint > "$out/check.log" 2>&1
echo "check rc=$? at ${SECONDS}s"; grep -A5 "^variant" "$out/check.log" | cut -c1-200
med timeout "${LEARN_S:-90}" python3 benchmarks/levers_learn.py --shape toy \
  --variants "+ static_packs + compile_norm_rope,+ static_packs + compile_norm_rope + joint_projections" \
  > "$out/learn.log" 2>&1
echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -5
