"""The Flamenco job type (farm/flamenco/gid_bake.js) compiles one `gid bake` per chunk.

Its compileJob runs under node with a recorded stand-in of Flamenco's documented author API and frameChunker
(tests/flamenco_author_stand_in.js); skipped only where node is not installed.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB_TYPE = ROOT / "farm" / "flamenco" / "gid_bake.js"
STAND_IN = ROOT / "tests" / "flamenco_author_stand_in.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")


def compile_job(**settings) -> dict:
    proc = subprocess.run([NODE, str(STAND_IN), str(JOB_TYPE), json.dumps(settings)], capture_output=True,
                          text=True, timeout=60)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (proc.returncode == 0) == ("error" not in out), proc.stdout + proc.stderr
    return out


BASE = {"blendfile": "/shots/sq010/sh020.blend", "object": "matte sky"}


def test_chunks_of_a_range():
    out = compile_job(**BASE, frames="1-100", chunk_size=30)
    assert out["label"] == "GID Bake"
    assert {"blendfile", "object", "frames", "chunk_size", "backend"} <= set(out["settings"])
    chunks = ["gid-bake-1-30", "gid-bake-31-60", "gid-bake-61-90", "gid-bake-91-100"]
    assert [t["name"] for t in out["tasks"]] == chunks + ["gid-bake-link"]
    for task, frames in zip(out["tasks"], ("1-30", "31-60", "61-90", "91-100")):
        assert task["type"] == "blender" and task["dependencies"] == []
        assert task["commands"] == [{"name": "exec", "parameters": {
            "exe": "gid", "args": ["bake", BASE["blendfile"], "--object", "matte sky", "--frames", frames]}}]
    # last: show the bake in the .blend, after every chunk
    link = out["tasks"][-1]
    assert link["dependencies"] == chunks
    assert link["commands"] == [{"name": "exec", "parameters": {
        "exe": "gid", "args": ["bake", BASE["blendfile"], "--object", "matte sky", "--link"]}}]


def test_shared_backend_mode_and_runs():
    out = compile_job(**BASE, frames="1-5,8,10..12", chunk_size=4, mode="splat", backend="tcp://gpu-box:5555",
                      gid_exe="{gid}")
    frames = [t["commands"][0]["parameters"]["args"][5] for t in out["tasks"][:-1]]
    assert frames == ["1-4", "5,8,10-11", "12"]
    params = out["tasks"][0]["commands"][0]["parameters"]
    assert params["exe"] == "{gid}"
    assert params["args"][6:] == ["--mode", "splat", "--backend", "tcp://gpu-box:5555", "--token-env",
                                  "GID_SERVE_TOKEN"]


def test_one_chunk_and_bad_chunk_size():
    out = compile_job(**BASE, frames="1-24", chunk_size=100, link=False)
    assert [t["name"] for t in out["tasks"]] == ["gid-bake-1-24"]
    assert "chunk_size must be a positive" in compile_job(**BASE, frames="1-24", chunk_size=0)["error"]
