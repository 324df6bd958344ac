#!/usr/bin/env bash
# s15 calls (issue 19), from /work/main's checkout on the device, carrying `wheels` (benchmarks/s8_wheels.sh DEST).
#   call 1, levers:  STAGE=levers bash benchmarks/s15_call.sh
#     b and b_joint (train.joint_projections: q/k/v and gate/up base weights in one buffer, one GEMM each way) in ABBA
#     order, 2 extra steps of each row under torch.profiler (tables in $out/prof/<row>.txt), then levers_learn with
#     joint projections on top of train=gpu's levers (B must leave zero, loss must fall).
#   call 2, the table: s9_call.sh's table stage (rows b, c, a, b_peft, then Unsloth and torchtune).
#   call 3, the main job: STAGE=job bash benchmarks/s15_call.sh (train=gpu on the embedded model, 40 steps, to run.json)
set -uo pipefail
budget=${BUDGET_S:-580}
source "$(dirname "$0")/call_env.sh" med  # also defines `job`
case ${STAGE:-levers} in
levers)
  med timeout "${TRAIN_S:-400}" python3 benchmarks/train_throughput.py --root /tmp/bench \
    --rows "${ROWS:-b,b_joint,b_joint,b}" --steps "${STEPS:-12}" --warmup "${WARMUP:-4}" \
    --profile "$out/prof" --profile-rows "${PROFILE_ROWS:-b,b_joint}" \
    --row-timeout "${ROW_TIMEOUT:-150}" --json "$out/train.json" > "$out/train.log" 2>&1
  echo "train rc=$? at ${SECONDS}s"; tail -9 "$out/train.log"
  learn_left "+ static_packs + compile_norm_rope + compile_layers + joint_projections" 60 ;;
job)
  JOB_S=$((budget - SECONDS)) job gpu "$@" ;;
esac
