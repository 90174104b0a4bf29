"""Build-time check of the codedance sandbox image (run by its Dockerfile, not at runtime).

``--installed FILE``: exit 1 unless every requirement's module is importable (pip is
then skipped). ``--verify FILE``: import each module and the worker, print versions,
exit 1 naming what failed.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

#: distribution name -> import name, for the `tools` extra.
IMPORT_NAMES = {"pillow": "PIL", "opencv-python-headless": "cv2", "opencv-python": "cv2"}


def modules(path: str) -> list[str]:
    """The import names of the requirements in ``path``."""
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    names = []
    for line in lines:
        name = line.split(";")[0].strip()
        for mark in "<>=!~[ ":
            name = name.split(mark)[0]
        if name:
            names.append(IMPORT_NAMES.get(name.lower(), name.replace("-", "_")))
    return names


def main(mode: str, path: str) -> int:
    wanted = modules(path)
    if mode == "--installed":
        return 0 if all(importlib.util.find_spec(m) for m in wanted) else 1
    failed = []
    for name in wanted:
        try:
            module = importlib.import_module(name)
            print(f"{name} {getattr(module, '__version__', '')}")
        except Exception as exc:
            failed.append(f"{name} ({type(exc).__name__}: {exc})")
    sys.path.insert(0, "/opt/codedance-image")
    try:
        importlib.import_module("worker.stdio")
    except Exception as exc:
        failed.append(f"the codedance worker ({type(exc).__name__}: {exc})")
    if failed:
        print("codedance sandbox image: cannot import " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
