#!/usr/bin/env bash
# The folder the s8 call carries (benchmarks/s8_call.sh), built here with PyPI reachable:
#   bash benchmarks/s8_wheels.sh /work/main/wheels    # then carry `wheels`; see the command in RESULTS.md (s8)
# med/: gpu_wheels.sh less bitsandbytes and drug-named-entity-recognition (b_peft imports neither), 28 MB.
# uns/: Unsloth 2026.10.9 without its 80 MB `studio/` web UI, and its own trl 1.15 / datasets 4.8.5 (Unsloth pins
#       trl<=1.15, datasets<5); bitsandbytes (CUDA 13 build only) because unsloth_zoo's patch_model_and_tokenizer
#       raises ImportError without it even for 16-bit LoRA (seen in the s8 call); diffusers and hf_transfer are left
#       out (nothing Unsloth imports for this row needs them). 15 MB.
# tt/:  torchtune 0.6.1 alone, 0.9 MB, for torchtune_row.py, which runs on uns/'s torchao 0.17.0 (s9_call.sh installs
#       that wheel beside it): the row imports neither the recipe nor `torchtune.training` (both need torchao's
#       `int4_weight_only`, dropped in 0.16). Left out: torchdata (a guarded import, the recipe's dataloader only),
#       kagglehub/kagglesdk (`tune download` only), blobfile/pycryptodomex (tiktoken's remote files only); the image
#       has sentencepiece and tiktoken. TT_RECIPE=1 adds torchao 0.15.0 (the last with `int4_weight_only` and
#       `nf4tensor`, 7.2 MB) and torchdata 0.11.0, what torchtune_check.py's recipe load (s8_call.sh) needs.
# bench/: this branch's benchmarks/ (the device gets /work/main's checkout; the call copies these over it). The whole
#       folder plus /work/main's 12 MB tree must stay under the 64 MiB a call carries.
set -euo pipefail
dest=${1:?usage: s8_wheels.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
download() { local to=$1; shift; python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
             --implementation cp "${platforms[@]}" -d "$to" "$@"; }
mkdir -p "$dest"/{med,uns,tt,bench}
tmp=$(mktemp -d)
bash "$here/gpu_wheels.sh" "$tmp/med" > /dev/null
find "$tmp/med" -name '*.whl' ! -name 'bitsandbytes-*' ! -name 'drug_named_entity_recognition-*' -exec cp {} "$dest/med/" \;
cp "$tmp"/med/bitsandbytes-*.whl "$dest/uns/"  # gpu_wheels.sh's repack: CUDA 13 and CPU libraries only
download "$tmp/uns" unsloth==2026.10.9
(mkdir "$tmp/u" && cd "$tmp/u" && unzip -q "$tmp"/uns/unsloth-*.whl && rm -rf studio && zip -qr "$tmp/unsloth.whl" .)
mv "$tmp/unsloth.whl" "$dest/uns/$(basename "$tmp"/uns/unsloth-*.whl)"
download "$dest/uns" unsloth_zoo==2026.10.9 trl==1.15.0 datasets==4.8.5 torchao==0.17.0 cut_cross_entropy==25.1.1 \
  tyro==1.0.17 docstring-parser==0.18.0 typeguard==4.6.1 shtab==1.13.0 msgspec==0.23.0 json5==0.17.3 \
  structlog==26.1.0 nest-asyncio==1.6.0 dill==0.4.1 multiprocess==0.70.19
download "$dest/tt" torchtune==0.6.1
if [[ ${TT_RECIPE:-0} == 1 ]]; then download "$dest/tt" torchao==0.15.0 torchdata==0.11.0; fi
cp "$here"/*.py "$here"/*.sh "$dest/bench/"
rm -rf "$tmp"
du -sh "$dest"/*
