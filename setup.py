"""Builds ``ifru_ext._C``: a CppExtension on a CPU torch, a CUDAExtension when the
installed torch is a CUDA build and nvcc is found (a visible GPU is not needed).

Overrides: ``IFRU_FORCE_CUDA=1`` builds CUDA even if detection says no, ``IFRU_FORCE_CPU=1``
builds the CPU-only extension. ``TORCH_CUDA_ARCH_LIST`` defaults to the visible GPU, else 9.0.
On an x86-64 machine with AVX2 and FMA the C++ sources are compiled for them (``host_vector_flags``);
``IFRU_PORTABLE=1`` builds for the baseline x86-64 instead, for a build that runs elsewhere.
``IFRU_PREBUILT_EXTENSION=/path/to/_C.<suffix>.so`` packages that already compiled module instead
of compiling the sources again (``BuildExtensionOrPrebuilt``).
Install with ``pip install --no-build-isolation .`` (torch first): an isolated build env
would pull a second, multi-GB torch.
"""
import glob
import os
import platform
import shutil

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def want_cuda() -> bool:
    if os.environ.get("IFRU_FORCE_CPU") == "1":
        return False
    if os.environ.get("IFRU_FORCE_CUDA") == "1":
        return True
    nvcc = shutil.which("nvcc") or (CUDA_HOME and os.path.join(CUDA_HOME, "bin", "nvcc"))
    return torch.version.cuda is not None and bool(nvcc) and os.path.exists(nvcc)


def host_vector_flags() -> list[str]:
    """``-mavx2 -mfma`` when the building machine has AVX2 and FMA (the extension is built from source
    where it runs): the CPU kernels' row loops then run on 256-bit vectors (BookCrossing MF, 2 threads:
    the planned HVP ~16% and the Gauss–Newton product ~22% faster, a 2% request ~20%).
    ``-ffp-contract=off`` keeps every product and sum rounded as written, so the results are the
    baseline build's to the bit. None with ``IFRU_PORTABLE=1``, off x86-64, or without the two."""
    if os.environ.get("IFRU_PORTABLE") == "1" or platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return []
    return ["-mavx2", "-mfma", "-ffp-contract=off"] if {"avx2", "fma"} <= set(flags) else []


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp") + glob.glob("csrc/composite/*.cpp"))
    cxx_flags = ["-O3", "-fopenmp"] + host_vector_flags()
    print("ifru_ext build: C++ flags %s" % " ".join(cxx_flags))
    if not want_cuda():
        print("ifru_ext build: CPU only (torch.version.cuda=%s)" % torch.version.cuda)
        return CppExtension(
            "ifru_ext._C", sources, extra_compile_args={"cxx": cxx_flags}, extra_link_args=["-fopenmp"]
        )
    if "TORCH_CUDA_ARCH_LIST" not in os.environ:
        if torch.cuda.is_available():
            major, minor = torch.cuda.get_device_capability()
            os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = "9.0"
    cuda_version = int(torch.version.cuda.replace(".", "")) if torch.version.cuda else 0
    sources += sorted(glob.glob("csrc/cuda/*.cpp") + glob.glob("csrc/cuda/*.cu"))
    print(
        "ifru_ext build: CUDA %s, arch %s, %d sources"
        % (torch.version.cuda, os.environ["TORCH_CUDA_ARCH_LIST"], len(sources))
    )
    defines = ["-DIFRU_WITH_CUDA=1", f"-DIFRU_CUDA_VERSION={cuda_version}"]
    return CUDAExtension(
        "ifru_ext._C",
        sources,
        extra_compile_args={"cxx": cxx_flags + defines, "nvcc": ["-O3", "-std=c++17"] + defines},
        extra_link_args=["-fopenmp"],
    )


class BuildExtensionOrPrebuilt(BuildExtension):
    """``BuildExtension``, or with ``IFRU_PREBUILT_EXTENSION`` set the module it names copied in
    as built: one compile serves several installs (the install test of ``make test`` installs the
    package ``make install`` compiled, ~5 minutes on two cores). The module must be built from
    these sources against this torch; its file name must carry this interpreter's suffix."""

    def build_extension(self, ext):
        prebuilt = os.environ.get("IFRU_PREBUILT_EXTENSION")
        if not prebuilt:
            return super().build_extension(ext)
        target = self.get_ext_fullpath(ext.name)
        if os.path.basename(prebuilt) != os.path.basename(target) or not os.path.isfile(prebuilt):
            raise SystemExit(f"IFRU_PREBUILT_EXTENSION={prebuilt!r}: expected an existing module named "
                             f"{os.path.basename(target)!r} (this interpreter's extension suffix)")
        print("ifru_ext build: prebuilt %s" % prebuilt)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(prebuilt, target)


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtensionOrPrebuilt})
