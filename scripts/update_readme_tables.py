"""Regenerate the README's quality and performance tables from `gid eval` / `gid bench` JSON (no figure by hand).

    python scripts/update_readme_tables.py EVAL.json [BENCH.json] [--more-eval EVAL2.json ...] [--readme README.md]

Replaces the text between `<!-- results:begin -->` / `<!-- results:end -->` with the eval tables (one block per
eval JSON: test sets evaluated in separate runs, e.g. in parallel, each keep their own provenance line) and, when a
bench JSON is given, between `<!-- bench:begin -->` / `<!-- bench:end -->` with the bench table. The README is
written atomically; missing markers are an error (nothing is appended silently).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.eval.report import bench_table_md, quality_table_md  # noqa: E402


def replace_between(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"README needs exactly one {begin} ... {end} pair")
    return pattern.sub(lambda _: f"{begin}\n{body.rstrip()}\n{end}", text)


def load_json(path: str, kind: str) -> dict:
    with open(path) as f:
        data = json.load(f)
    if data.get("kind") != kind:
        raise ValueError(f"{path} is not a {kind} result (kind={data.get('kind')!r})")
    return data


def source_line(data: dict, path: str) -> str:
    v = data.get("versions", {})
    return (f"_Generated from `{Path(path).name}` ({data.get('created', 'time not recorded')}, gid {v.get('gid', '?')}, "
            f"torch {v.get('torch', '?')}) by `scripts/update_readme_tables.py`._\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_json")
    ap.add_argument("bench_json", nargs="?")
    ap.add_argument("--more-eval", nargs="*", default=[], help="further gid eval JSON files (other test sets)")
    ap.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    args = ap.parse_args(argv)
    readme = Path(args.readme)
    text = readme.read_text()
    blocks = []
    for path in [args.eval_json, *args.more_eval]:
        ev = load_json(path, "gid-eval")
        blocks.append(source_line(ev, path) + "\n" + quality_table_md(ev))
    text = replace_between(text, "results", "\n".join(blocks))
    if args.bench_json:
        bench = load_json(args.bench_json, "gid-bench")
        text = replace_between(text, "bench", source_line(bench, args.bench_json) + "\n" + bench_table_md(bench))
    fd, tmp = tempfile.mkstemp(dir=readme.parent, prefix=readme.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, readme)
    print(f"updated {readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
