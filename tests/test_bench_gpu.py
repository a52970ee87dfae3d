"""The `gid bench --device cuda` section ("gpu") runs the same code on the CPU at tiny sizes: every figure is
there and measured (frames/s of both paths, their ratio, autocast's pixel difference, one predict)."""
from __future__ import annotations

from backend.eval import bench_gpu
from backend.eval.bench import run_bench


def test_gpu_section_on_cpu(monkeypatch):
    monkeypatch.setattr(bench_gpu, "GPU_SIZES", ((64, 40), (96, 54)))
    monkeypatch.setattr(bench_gpu, "_frames_for", lambda W, H, quick: 3)
    real = bench_gpu.bench_gpu
    monkeypatch.setattr(bench_gpu, "bench_gpu", lambda *a, **k: real(*a, **k, predict_steps=2))
    result = run_bench(quick=True, device_name="cpu", sections=("gpu",), compile_backend="eager")
    sec = result["sections"]["gpu"]
    assert sec["status"] == "ok", sec
    data = sec["data"]
    for key in ("splat_64x40", "splat_96x54") + tuple(k for k in data if k.startswith("ibr_")):
        e = data[key]
        assert e["frames"] == 3 and e["plain_fps"] > 0 and e["batched_fps"] > 0 and e["compiled_fps"] > 0
        assert e["amp_max_diff"] == 0            # no autocast on the CPU by default: the same pixels
        assert e["host_warp_fps"] > 0 and e["warp_equal"] == 1.0   # the CPU warps on the host either way
    assert any("batched" in r["value"] and "frames/s" in r["value"] for r in sec["rows"])
    p = data["predict"]
    assert p.get("status") == "missing" or (p["fp32_s"] > 0 and p["autocast_s"] > 0 and p["steps"] == 2), p
