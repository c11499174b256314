"""Packaging that pyproject.toml cannot express: the shipped weights and the C accelerator.

* The top-level ``models/`` directory (where shipped weights live in the repository) is
  installed as ``neuralzip/models/``, so a wheel or a non-editable install carries every
  shipped model version; ``benchmarks/results/cifar10.json`` (the committed CIFAR-10 run)
  is installed as ``neuralzip/results/`` so that ``nzip models`` shows measured rates.
* The optional C accelerators of the local codec (``_mixture``: mixture tables and ANS;
  ``_matmul``: the exact network's matrix products on AMX tiles, with AVX-512 VNNI or with
  AVX2, on CPUs that have them):
  ``optional=True``, so without a C compiler the build goes on and nzip uses the numpy
  code, which defines the same arithmetic (slower coding, identical files).
"""

from setuptools import Extension, find_packages, setup

setup(
    packages=find_packages(include=["neuralzip*"]) + ["neuralzip.models", "neuralzip.results"],
    package_dir={"neuralzip.models": "models", "neuralzip.results": "benchmarks/results"},
    package_data={"neuralzip": ["py.typed"], "neuralzip.models": ["*.safetensors", "*.json"],
                  "neuralzip.results": ["cifar10.json"]},
    ext_modules=[Extension(
        f"neuralzip.exact.{name}", [f"neuralzip/exact/{name}.c"], optional=True,
        extra_compile_args=["-O2", "-fwrapv", "-ffp-contract=off", "-fno-fast-math"],
    ) for name in ("_mixture", "_matmul")],
)
