#!/usr/bin/env bash
# One stage of the GPU measurements per call, on a bare GPU machine with the wheels of gpu_wheels.sh in .whl/.
#   bash benchmarks/gpu_session.sh train   # rows a, b, c (+ levers in ROWS=...), ~5 min on an H100
#   bash benchmarks/gpu_session.sh probe   # probe eval: dynamic vs static KV cache, compiled or not
#   bash benchmarks/gpu_session.sh e2e     # python -m medqa.train end to end: tiny default and the 3B shape
#   bash benchmarks/gpu_session.sh learn   # does each lever still train the adapter? (tiny model, ~3 min)
# Results go to $OUT (or ./gpu-out): JSON, logs and the e2e runs' run.json / probes.jsonl.
# A helper's branch on that machine: the device tool sends the session's own checkout (/work/main), so carry a
# `git archive` of the branch and the wheels in a folder that checkout ignores, unpack it and run from there
# (RESULTS.md, 2026-12-01). Time single rows with >= 20 steps: 6-8 steps vary by +-10% or more.
set -uo pipefail
stage=${1:?train, probe, e2e or learn}
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site/site-packages .whl/*.whl > "$out/pip.log" 2>&1 || { tail -5 "$out/pip.log"; exit 1; }
export PYTHONPATH=/tmp/site/site-packages:$PWD
# A tiny base model built here and carried as .cache/base/tiny-<hash> saves its ~2 min build on the GPU machine.
[ -d .cache/base ] && export MEDQA_CACHE=$PWD/.cache
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

case $stage in
  train)   # ROWS=a,b,... PROFILE=1: also 2 profiled steps a row (tables in $out/profile/)
    python3 benchmarks/train_throughput.py --rows "${ROWS:-a,b_peft,b,c}" --steps 6 --warmup 3 --row-timeout "${ROW_TIMEOUT:-300}" \
      ${PROFILE:+--profile "$out/profile"} --json "$out/train.json" > "$out/train.log" 2>&1
    tail -8 "$out/train.log" ;;
  probe)
    python3 benchmarks/probe_eval.py --variants "${VARIANTS:-dynamic,static_nocompile,static}" --repeats 2 \
      --train-json "$out/train.json" --json "$out/probe.json" > "$out/probe.log" 2>&1
    tail -6 "$out/probe.log" ;;
  e2e)
    # train=gpu also compiles the probes' decode step: ~100 s once at step 0, so allow the tiny run ~4 min.
    # E2E_ARGS: more overrides for both runs (e.g. a lever measured in the same session).
    python3 -m medqa.train train=gpu ${E2E_ARGS:-} hydra.run.dir=/tmp/e2e-tiny > "$out/e2e-tiny.log" 2>&1
    tail -12 "$out/e2e-tiny.log"
    python3 -c "import sys; sys.path.insert(0, 'benchmarks'); import common, pathlib; \
common.random_checkpoint('llama32_3b', pathlib.Path('/tmp/medqa-bench'))"
    python3 -m medqa.train model=llama32_3b model.name_or_path=/tmp/medqa-bench/llama32_3b train=gpu ${E2E_ARGS:-} \
      train.max_steps=8 train.eval_steps=4 train.save_steps=8 train.warmup_steps=2 \
      hydra.run.dir=/tmp/e2e-3b > "$out/e2e-3b.log" 2>&1
    tail -12 "$out/e2e-3b.log"
    for run in tiny 3b; do
      cp "/tmp/e2e-$run/run.json" "$out/e2e-$run-run.json" 2>/dev/null
      cp "/tmp/e2e-$run/probes.jsonl" "$out/e2e-$run-probes.jsonl" 2>/dev/null
    done ;;
  learn)
    python3 benchmarks/levers_learn.py ${LEARN_VARIANTS:+--variants "$LEARN_VARIANTS"} > "$out/learn.log" 2>&1
    grep -v "it/s" "$out/learn.log" | tail -6 ;;
  *) echo "unknown stage $stage (train, probe, e2e or learn)"; exit 2 ;;
esac
