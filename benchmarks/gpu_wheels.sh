#!/usr/bin/env bash
# Wheels for a GPU machine that has torch/transformers/peft/accelerate but no package index (Python 3.12):
# everything else medqa imports (pyspellchecker, sweeps and wandb-workspaces since s12: the main job's scorer needs the
# word list; s12 call 4 stopped on its absence), pinned to the versions the benchmarks in RESULTS.md ran with.
#   bash benchmarks/gpu_wheels.sh [.whl]      # here, with PyPI reachable
#   (there) python3 -m pip install --no-index --no-deps --target /tmp/site/site-packages .whl/*.whl
#           export PYTHONPATH=/tmp/site/site-packages:$PWD
# bitsandbytes is repacked with only its CUDA 13 and CPU libraries (the full wheel is ~42 MB).
set -euo pipefail
out=${1:-.whl}
mkdir -p "$out"
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)
download() { local dest=$1; shift; python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
             --implementation cp "${platforms[@]}" -d "$dest" "$@"; }
download "$out" trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 hydra-core==1.3.8 \
  omegaconf==2.3.1 liger-kernel==0.8.5 wandb==0.31.0 cwevals==0.0.1b1 googleapis-common-protos==1.76.0 \
  opentelemetry-api==1.45.2 opentelemetry-sdk==1.45.2 opentelemetry-proto==1.45.2 \
  opentelemetry-exporter-otlp-proto-http==1.45.2 opentelemetry-exporter-otlp-proto-common==1.45.2 \
  opentelemetry-exporter-http-transport==0.66b2 opentelemetry-exporter-otlp-common==0.66b2 \
  opentelemetry-semantic-conventions==0.66b2 protobuf==7.36.2 platformdirs==4.14.8 click==8.5.1 \
  pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 anyio==4.16.0 \
  httpx==0.28.1 httpcore==1.0.9 h11==0.16.0 sniffio==1.3.1 distro==1.9.0 \
  drug-named-entity-recognition==2.0.9 pyspellchecker==0.9.1 sweeps==0.2.0 wandb-workspaces==0.4.13
python3 -m pip wheel -q --no-deps -w "$out" antlr4-python3-runtime==4.9.3  # source-only on PyPI

tmp=$(mktemp -d)
download "$tmp" bitsandbytes==0.50.2
(cd "$tmp" && mkdir unpacked && cd unpacked && unzip -q ../bitsandbytes-*.whl \
  && find bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda130*' ! -name '*cpu*' -delete \
  && zip -qr "$OLDPWD/bnb.whl" .)
mv "$tmp/bnb.whl" "$out/$(basename "$tmp"/bitsandbytes-*.whl)"
rm -rf "$tmp"
du -sh "$out"
