"""Build script: finds codedance's subpackages, so a new one cannot be left out of the wheel.

The repository root *is* the ``codedance`` package (``package-dir`` in pyproject.toml maps
``codedance`` to ``.``), and pyproject.toml's ``packages.find`` would name the subpackages
``core``, ``plugins``, ... at the top level of site-packages. Here every package under the
root, except the checkout's own tests, docs, examples and benchmarks, becomes
``codedance.<name>``. Everything else about the build lives in pyproject.toml.
``script_name`` keeps this build script itself out of the package (setuptools skips the
script it was started from, but build backends start it from their own runner).
"""

from setuptools import find_packages, setup

NOT_SHIPPED = ["tests", "tests.*", "examples", "examples.*", "bench", "bench.*", "build", "build.*"]

setup(
    packages=["codedance", *(f"codedance.{name}" for name in find_packages(exclude=NOT_SHIPPED))],
    script_name=__file__,
)
