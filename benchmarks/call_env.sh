# Sourced by the device-call scripts (s9, s11, s12): the output folder, an offline environment, the carried wheel
# sets installed each into /tmp/site-SET, the versions into $out/env.txt, and `med CMD` (CMD on medqa's wheels).
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
