#!/usr/bin/env bash
# s12 call 1 (issue 19): is the candidate of s11 call 5 (each decoder layer compiled over the whole-block nodes,
# row b_clayers_nocnr) a real gain, and does it still train the adapter on the GPU? Carries `wheels`
# (benchmarks/s8_wheels.sh). The table call after it is s9_call.sh's `table` stage.
#   bash benchmarks/s12_call.sh
# 1. levers_learn on the toy shape: b's levers, then the candidate's (B must leave zero, loss must fall);
# 2. b and the candidate in ABBA order, three pairs, one invocation (rows keep their order and repeats).
# Call 3 ran LEARN_VARIANTS="+ static_packs + compile_layers" ROWS=b_clayers_nocnr,b,b,b_clayers_nocnr TRAIN_S=330.
set -uo pipefail
source "$(dirname "$0")/call_env.sh" med
med timeout "${LEARN_S:-100}" python3 benchmarks/levers_learn.py --shape toy \
  --variants "${LEARN_VARIANTS:-+ static_packs + compile_norm_rope,+ static_packs + compile_layers}" > "$out/learn.log" 2>&1
echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -5
X=${X:-b_clayers_nocnr}
med timeout "${TRAIN_S:-420}" python3 benchmarks/train_throughput.py --root /tmp/bench \
  --rows "${ROWS:-b,$X,$X,b,b,$X}" --steps "${STEPS:-10}" --warmup "${WARMUP:-4}" \
  --row-timeout "${ROW_TIMEOUT:-150}" --json "$out/train.json" > "$out/train.log" 2>&1
echo "train rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
