#!/usr/bin/env bash
# s13 call 1 (issue 19): can the candidate (each decoder layer compiled over the whole-block nodes, row
# b_clayers_nocnr) become train=gpu? Carries `wheels` (wheels/med from benchmarks/gpu_wheels.sh: the main job's
# packages, bitsandbytes included).
#   bash benchmarks/s13_call.sh
# 1. the main job (embedded model, 40 steps, evals at 0/20/40 with probes and the held-out set) with b's settings, then
#    with the candidate's: wall time, train time and each eval's generation seconds from run.json;
# 2. QLoRA with and without the candidate (c must stay <= 1.3x slower than b), then b and the candidate once more.
# Call 1 ran the candidate as train.compile_norm_rope=false train.compile_layers=true (Module.compile on each layer):
# its job failed in the probes' compiled decode (RESULTS.md s13). Call 2, after the fix (medqa.model.compiled_layers;
# compile_layers now replaces compile_norm_rope by itself): JOBS=cand ROWS=b,b_clayers,c_clayers TRAIN_S=300 (failed the
# same way); call 3 JOBS=cand ROWS=none (layers as built while generating: failed the same way). Since then
# compile_norm_rope stays on beside compiled layers. Next: JOBS="b cand" ROWS=b,b_clayers,b_clayers,b TRAIN_S=330.
set -uo pipefail
source "$(dirname "$0")/call_env.sh" med  # also defines `job`
: "${JOB_S:=200}"  # s13's job limit
for name in ${JOBS:-b cand}; do
  case $name in b) job b ;; cand) job cand train.compile_layers=true ;; esac
done
echo "jobs done at ${SECONDS}s"
[[ ${ROWS:-} == none ]] && exit 0
med timeout "${TRAIN_S:-300}" python3 benchmarks/train_throughput.py --root /tmp/bench \
  --rows "${ROWS:-c,c_clayers_nocnr,b_clayers_nocnr,b}" --steps "${STEPS:-10}" --warmup "${WARMUP:-4}" \
  --row-timeout "${ROW_TIMEOUT:-150}" --json "$out/train.json" > "$out/train.log" 2>&1
echo "train rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
