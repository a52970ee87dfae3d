"""`python build.py addon`: build the Blender extension zips into dist/."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if not (ROOT / "blender_addon" / "blender_manifest.toml").exists():
        print("addon: blender_addon/blender_manifest.toml is missing; the add-on has not landed yet",
              file=sys.stderr)
        return 1
    print("addon: the packaging step has not landed yet (README 'Features')", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
