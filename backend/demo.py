"""`python build.py demo [IMAGE]`: an image in, an animated Blender scene and a video out.

This grows with the project; each missing piece is named instead of faked.
"""
from __future__ import annotations

import sys
from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights" / "default"


def main(argv: list[str]) -> int:
    missing = [name for name in ("vae", "ldm", "render") if not (WEIGHTS / name).is_dir()]
    if missing:
        print("demo: cannot run yet: the shipped default model is missing "
              f"({', '.join(missing)} under {WEIGHTS}). See README 'Features' for what works today.",
              file=sys.stderr)
        return 1
    print("demo: the Blender scene builder has not landed yet (README 'Features').", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
