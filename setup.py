"""Builds ``ifru_ext._C``: a CppExtension on a CPU torch, a CUDAExtension when the
installed torch is a CUDA build and nvcc is found (a visible GPU is not needed).

Overrides: ``IFRU_FORCE_CUDA=1`` builds CUDA even if detection says no, ``IFRU_FORCE_CPU=1``
builds the CPU-only extension. ``TORCH_CUDA_ARCH_LIST`` defaults to the visible GPU, else 9.0.
Install with ``pip install --no-build-isolation .`` (torch first): an isolated build env
would pull a second, multi-GB torch.
"""
import glob
import os
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


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp") + glob.glob("csrc/composite/*.cpp"))
    cxx_flags = ["-O3", "-fopenmp"]
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


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtension})
