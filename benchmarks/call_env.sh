# Sourced by the device-call scripts (s9 to s16): the output folder, an offline environment, the carried wheel
# sets installed each into /tmp/site-SET, the versions into $out/env.txt, `med CMD` (CMD on medqa's wheels), `job`
# and `learn_left`.
#   source "$(dirname "$0")/call_env.sh" med [uns]      # the sets to install, folders of $W (default: wheels)
out=${OUT:-gpu-out}
W=${W:-wheels}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
for set in "$@"; do
  [[ -d $W/$set ]] || continue
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "/tmp/site-$set" \
    "$W/$set"/*.whl > "/tmp/pip-$set.log" 2>&1 || { echo "pip $set failed"; tail -5 "/tmp/pip-$set.log"; }
done
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  PYTHONPATH=/tmp/site-med python3 -c "import torch, transformers, peft, trl, sys; print(sys.version.split()[0], \
torch.__version__, transformers.__version__, peft.__version__, trl.__version__)"; } | tee "$out/env.txt"
echo "installed at ${SECONDS}s"
med() { PYTHONPATH=/tmp/site-med:$PWD "$@"; }
learn_left() {  # learn_left VARIANTS [MIN_S]: levers_learn (toy shape) in what is left of $budget, if at least MIN_S
  local left=$((budget - SECONDS))
  if ((left > ${2:-50})); then
    med timeout "$left" python3 benchmarks/levers_learn.py --shape toy --variants "$1" > "$out/learn.log" 2>&1
    echo "learn rc=$? at ${SECONDS}s"; grep -v "it/s" "$out/learn.log" | tail -4
  else echo "learn skipped: ${left}s left"; fi
}
job() {  # job NAME OVERRIDES...: the main job on the embedded model (train=gpu, 40 steps, evals at 0/20/40), its line
  # in $out/jobs.txt (run.json's wall and train seconds, each eval's loss, held-out quality and generation seconds)
  local name=$1; shift; local t0=$SECONDS
  med timeout "${JOB_S:-220}" python3 -m medqa.train train=gpu train.max_steps=40 train.eval_steps=20 \
    train.save_steps=20 "hydra.run.dir=/tmp/jobs/$name" "$@" > "$out/job-$name.log" 2>&1
  echo "job $name rc=$? wall $((SECONDS - t0))s"
  med python3 - "$name" <<'PY' | tee -a "$out/jobs.txt"
import json, sys
name = sys.argv[1]
try:
    s = json.load(open(f"/tmp/jobs/{name}/run.json"))
except (OSError, ValueError) as err:
    sys.exit(f"{name}: no run.json ({err})")
evals = [(e["step"], round(e["eval_loss"], 4), e.get("heldout_quality"), e.get("generate_seconds")) for e in s["evals"]]
print(name, "seconds", s.get("seconds"), "train_seconds", s.get("train_seconds"), "evals", evals)
PY
}
