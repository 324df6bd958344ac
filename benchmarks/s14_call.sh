#!/usr/bin/env bash
# s14 call 1 (issue 19): the candidate (each decoder layer compiled while training, train.compile_layers) after the
# fix of s13's decode failure (flex kept out of the training graphs only: medqa.model.compiled_layers). Carries
# `wheels` (wheels/med from benchmarks/gpu_wheels.sh: the main job's packages, bitsandbytes included).
#   bash benchmarks/s14_call.sh
# 1. the main job (embedded model, 40 steps, evals at 0/20/40 with probes and the held-out set) with the candidate:
#    wall time, train time and each eval's generation seconds from run.json (b's were measured in s13 call 1);
# 2. levers_learn on the toy shape with the candidate as train=gpu would run it (B must leave zero, loss must fall);
# 3. b and the candidate in ABBA order, one train_throughput.py invocation.
# Call 1 ran it as is (the candidate's job: 220 s was too short for its compile). Call 2 was s9_call.sh's table stage.
# Call 3: JOBS=none ROWS=b_peft,b TRAIN_S=250 LEARN_AFTER=1 LEARN_S=170 (the rows before levers_learn).
set -uo pipefail
source "$(dirname "$0")/call_env.sh" med  # also defines `job`
for name in ${JOBS:-cand}; do
  case $name in b) job b ;; cand) job cand train.compile_layers=true ;; esac
done
echo "jobs done at ${SECONDS}s"
learn() {
  med timeout "${LEARN_S:-90}" python3 benchmarks/levers_learn.py --shape toy \
    --variants "+ static_packs + compile_norm_rope + compile_layers" > "$out/learn.log" 2>&1
  echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -3
}
[[ -z ${LEARN_AFTER:-} ]] && learn
if [[ ${ROWS:-} != none ]]; then
med timeout "${TRAIN_S:-300}" python3 benchmarks/train_throughput.py --root /tmp/bench \
  --rows "${ROWS:-b,b_clayers,b_clayers,b}" --steps "${STEPS:-10}" --warmup "${WARMUP:-4}" \
  --row-timeout "${ROW_TIMEOUT:-150}" --json "$out/train.json" > "$out/train.log" 2>&1
echo "train rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
fi
[[ -n ${LEARN_AFTER:-} ]] && learn
