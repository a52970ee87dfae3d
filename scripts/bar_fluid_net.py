"""The image -> velocity network against hints alone, on held-out random synthetic fluid scenes (96x64).

    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/bar_fluid_net.py [--weights DIR] [--scenes 40]
"""
from __future__ import annotations

import argparse

from backend.eval.fluid import network_vs_hints
from backend.motion.fluid_velocity import FluidVelocityNet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default=None, help="default: backend/weights/default/fluid")
    ap.add_argument("--scenes", type=int, default=40)
    args = ap.parse_args()
    r = network_vs_hints(FluidVelocityNet.from_pretrained(args.weights), args.scenes)
    print(f"mean EPE inside the mask over {r['scenes']} held-out scenes (px/frame; speeds 0.4..2.5):")
    for key, label in (("zero", "zero field"), ("hints_1", "1 stroke alone"), ("hints_3", "3 strokes alone"),
                       ("network_signed_by_truth", "network, true sign"), ("network_plus_1", "network + 1 stroke"),
                       ("network_plus_3", "network + 3 strokes")):
        print(f"  {label:20s} {r[key]:.3f}")


if __name__ == "__main__":
    main()
