"""How much memory the training device has, found without importing torch (`plan` runs this).

    detect_device(choice)   DeviceInfo: the device `auto` would pick (cuda when nvidia-smi
                            reports a GPU, else cpu), its memory in bytes (None: unknown)
                            and whether it computes in bf16

CUDA memory comes from `nvidia-smi` (the driver's own tool, present wherever CUDA works),
the CPU's from the machine's physical memory (training on the CPU holds everything in
RAM; Apple MPS shares it too). Detection is a best effort: when it fails the estimate is
still printed, only not compared.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass

NVIDIA_SMI_TIMEOUT_S = 5


@dataclass(frozen=True)
class DeviceInfo:
    type: str
    """cpu | cuda | mps"""
    memory: int | None
    """Bytes one device holds (the smallest GPU when there are several), or None when unknown."""
    name: str = ""
    bf16: bool = False
    """The device computes in bf16 (what `precision: auto` picks there)."""


@functools.lru_cache(maxsize=None)  # validate and plan both ask; nvidia-smi takes a moment
def detect_device(choice: str = "auto") -> DeviceInfo:
    """The device `choice` (auto|cpu|cuda|mps) resolves to, with its memory."""
    if choice in ("auto", "cuda"):
        gpu = _nvidia_gpu()
        if gpu is not None:
            return gpu
        if choice == "cuda":
            return DeviceInfo("cuda", None, "CUDA device (not detected: nvidia-smi is not available)", bf16=True)
    if choice == "mps":
        return DeviceInfo("mps", physical_memory(), "Apple GPU (unified memory)")
    return DeviceInfo("cpu", physical_memory(), "CPU (system memory)")


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine (Linux, macOS), or None."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _nvidia_gpu() -> DeviceInfo | None:
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        out = subprocess.run(
            [tool, "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        try:
            name, mib, capability = parts[0], int(float(parts[1])), float(parts[2])
        except (IndexError, ValueError):
            continue
        gpus.append((mib, name, capability))
    if not gpus:
        return None
    mib, name, capability = min(gpus)  # the job must fit the smallest
    return DeviceInfo("cuda", mib * 1024**2, name, bf16=capability >= 8.0)  # bf16 from Ampere (8.0) on
