"""Which precision a CPU computes bf16 work in: bf16 only where the CPU has it natively, fp32 otherwise.

A CPU without AMX or AVX512-BF16 emulates bf16 matmuls, far slower than fp32 (18 s a pretraining step on an
AVX2-only EPYC against ~0.3 s), and the rounding differs from a native one, so a model built or trained there
is not the one a native machine makes. Every place that would autocast or train in bf16 on a CPU asks
`cpu_precision` instead of assuming. The forcing switches `ATEN_CPU_CAPABILITY=avx2` and
`ONEDNN_MAX_CPU_ISA=AVX2` (or any level below AVX-512) count as "not native", so a native machine can show
the slow path. Imports torch lazily and nothing else from medqa (it belongs with the core helpers).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

# /proc/cpuinfo flags that mean the CPU computes bf16 dot products in hardware.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")
# ATen kernel levels that can use those instructions (AVX2 and below run bf16 through fp32 conversions).
NATIVE_CAPABILITIES = ("AVX512", "AMX")


def cpu_capability() -> str:
    """The kernel level torch dispatches to on this CPU ("AVX512", "AVX2", "DEFAULT", ...), after
    ATEN_CPU_CAPABILITY."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _onednn_capped_below_avx512() -> bool:
    """ONEDNN_MAX_CPU_ISA caps oneDNN (which runs CPU bf16 matmuls) at an ISA without bf16 dot products."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return bool(isa) and isa != "ALL" and not isa.startswith(("AVX512_CORE_BF16", "AVX512_CORE_AMX", "AVX10"))


def cpu_has_bf16() -> bool:
    """The CPU itself advertises a bf16 dot-product instruction (whatever software is allowed to use)."""
    return any(flag in cpu_flags() for flag in NATIVE_BF16_FLAGS)


def native_bf16() -> bool:
    """True when bf16 runs natively here: the CPU has AMX-BF16 or AVX512-BF16, torch dispatches AVX-512
    kernels, oneDNN is allowed bf16 and says so. Any one missing means bf16 would be emulated."""
    if not cpu_has_bf16():
        return False
    if cpu_capability() not in NATIVE_CAPABILITIES or _onednn_capped_below_avx512():
        return False
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())  # respects ONEDNN_MAX_CPU_ISA
    except (AttributeError, RuntimeError):  # a torch built without oneDNN
        return False


def cpu_precision(requested: str) -> str:
    """The precision CPU work asked to run in `requested` ("fp32" | "bf16") actually runs in: bf16 only when
    native, else fp32 (never emulated bf16)."""
    if requested not in ("fp32", "bf16"):
        raise ValueError(f"precision {requested!r}: expected fp32 or bf16 on a CPU")
    return "bf16" if requested == "bf16" and native_bf16() else "fp32"


def autocast_dtype(requested: str = "bf16"):
    """The torch dtype for `torch.autocast("cpu", dtype=..., enabled=...)`: bfloat16 when native, else
    float32 (autocast then off: `enabled=dtype is torch.bfloat16`)."""
    import torch

    return torch.bfloat16 if cpu_precision(requested) == "bf16" else torch.float32


def training_precision(requested: str, on_gpu: bool) -> str:
    """The precision a run trains in: a GPU's request stands; on a CPU, bf16 falls back to fp32 without
    native support (fp16 on a CPU is refused earlier, by the settings checks)."""
    return requested if on_gpu or requested != "bf16" else cpu_precision(requested)


def precision_record(requested: str, used: str) -> dict:
    """What run.json and build_info.json record about how the numbers were computed."""
    return {
        "precision_requested": requested,
        "precision": used,
        "cpu_capability": cpu_capability(),
        "cpu_native_bf16": native_bf16(),
        "cpu_bf16_flags": sorted(f for f in NATIVE_BF16_FLAGS if f in cpu_flags()),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }
