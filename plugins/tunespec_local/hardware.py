"""What the training machine's hardware can do fast, read without importing torch.

`precision: auto` trains in bf16 autocast only where bf16 is native. On a CPU that means
the AVX-512 BF16 or AMX-BF16 instructions: there a bf16 matmul runs about twice as fast
as fp32. Without them torch emulates bf16 and a matmul is many times *slower* than fp32
(measured 35x slower on a 2-core AVX2 EPYC VM, see bench/README.md), so `auto` keeps fp32.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

# The /proc/cpuinfo flags of the instructions that make bf16 matmuls native on x86 CPUs.
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first processor listed in /proc/cpuinfo text."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags as Linux reports them; empty elsewhere (then `auto` keeps fp32)."""
    try:
        return parse_cpu_flags(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        return frozenset()


def cpu_has_native_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool((cpu_flags() if flags is None else flags) & NATIVE_BF16_CPU_FLAGS)


def auto_precision(device_type: str, cuda_bf16: bool = False, flags: frozenset[str] | None = None) -> str:
    """What `precision: auto` trains in on this device: bf16 where it is native, else fp32.

    fp32 master weights and optimizer state are kept either way: autocast runs the
    matmuls in bf16 and the parameters stay fp32."""
    if device_type == "cuda":
        return "bf16" if cuda_bf16 else "fp32"
    if device_type == "cpu":
        return "bf16" if cpu_has_native_bf16(flags) else "fp32"
    return "fp32"  # MPS: bf16 autocast there is not supported by this backend
