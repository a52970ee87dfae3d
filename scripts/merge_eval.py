"""Merge `gid eval` JSONs of one test set split across processes (run side by side on separate cores).

    python scripts/merge_eval.py PART.json [PART.json ...] --json OUT.json

Split a set into folders of the same name (e.g. links `split_a/synth_test`, `split_b/synth_test`), evaluate each
with the same options and `--seed` equal to the number of scenes before it (scene i of the whole set draws seed
+ i, so the merged run samples exactly what one process would), then merge: scenes are concatenated in the order
given and every aggregate is recomputed from them. Parts run with different settings are refused.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.eval.evaluate import aggregate, write_json_atomic  # noqa: E402

MUST_AGREE = ("kind", "version", "samples", "steps", "guidance", "sampler", "refine", "loop_frames", "spread")


def merge(parts: list[dict], names: list[str]) -> dict:
    first = parts[0]
    for name, part in zip(names[1:], parts[1:]):
        for key in MUST_AGREE:
            if part.get(key) != first.get(key):
                raise ValueError(f"{name}: {key} = {part.get(key)!r}, but the first part has {first.get(key)!r}")
        if part["model"].get("checkpoint") != first["model"].get("checkpoint"):
            raise ValueError(f"{name}: another model checkpoint ({part['model'].get('checkpoint')})")
    merged = {**first, "sets": {}, "merged_from": names,
              "command": [" ".join(p.get("command") or []) for p in parts]}
    expected_seed = first["seed"]
    for name, part in zip(names, parts):
        if part["seed"] != expected_seed:
            raise ValueError(f"{name}: seed {part['seed']}, expected {expected_seed} (the scenes before it): "
                             "the merged run would not sample what one process does")
        expected_seed += max(len(s["scenes"]) for s in part["sets"].values())
        for set_name, data in part["sets"].items():
            into = merged["sets"].setdefault(set_name, {"folder": [], "scenes": []})
            into["folder"].append(data["folder"])
            into["scenes"].extend(data["scenes"])
            into["real"] = into.get("real", True) and bool(data.get("real", False))
    for data in merged["sets"].values():
        data["aggregate"] = aggregate(data["scenes"])
    return merged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", type=Path)
    parser.add_argument("--json", required=True, type=Path, help="merged output")
    args = parser.parse_args()
    parts = [json.loads(p.read_text()) for p in args.parts]
    try:
        merged = merge(parts, [str(p) for p in args.parts])
    except ValueError as e:           # parts that cannot make one run: say why, write nothing
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_json_atomic(args.json, merged)
    for set_name, data in merged["sets"].items():
        print(f"{set_name}: {len(data['scenes'])} scenes -> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
