"""`precision: auto` picks bf16 only where bf16 matmuls are native (fast)."""

from tunespec_local.hardware import auto_precision, parse_cpu_flags

# Flag lines as real Linux machines print them (trimmed).
SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile\n"
EPYC_ZEN4 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx512bw avx512_bf16\n"
EPYC_AVX2_VM = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"


def test_cpus_with_native_bf16_train_in_bf16():
    assert auto_precision("cpu", flags=parse_cpu_flags(SAPPHIRE_RAPIDS)) == "bf16"
    assert auto_precision("cpu", flags=parse_cpu_flags(EPYC_ZEN4)) == "bf16"


def test_cpus_that_would_emulate_bf16_stay_in_fp32():
    # emulated bf16 is many times slower than fp32, so auto must not pick it
    assert auto_precision("cpu", flags=parse_cpu_flags(EPYC_AVX2_VM)) == "fp32"
    assert auto_precision("cpu", flags=parse_cpu_flags("")) == "fp32"


def test_cuda_follows_the_device_and_mps_stays_fp32():
    assert auto_precision("cuda", cuda_bf16=True) == "bf16"
    assert auto_precision("cuda", cuda_bf16=False) == "fp32"
    assert auto_precision("mps", flags=parse_cpu_flags(SAPPHIRE_RAPIDS)) == "fp32"


def test_this_machines_choice_agrees_with_torch():
    """What /proc/cpuinfo says must match what torch's CPU kernels detect."""
    import torch

    native = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: None)()
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: None)()
    if native is None:
        return
    assert (auto_precision("cpu") == "bf16") == bool(native or amx)
