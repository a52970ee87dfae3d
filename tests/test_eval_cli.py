"""`gid eval` on two tiny synthetic scenes with whatever components exist, `gid bench` smoke, README tables."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from backend import cli
from backend.eval import bench

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory):
    base = tmp_path_factory.mktemp("eval_data")
    test, train = base / "tiny_test", base / "tiny_train"
    assert cli.main(["data", "synth", "--out", str(test), "--count", "2", "--size", "64x40", "--frames", "32",
                     "--seed", "900000"]) == 0
    assert cli.main(["data", "synth", "--out", str(train), "--count", "2", "--size", "64x40", "--frames", "32",
                     "--seed", "0", "--lite"]) == 0
    return test, train


@pytest.mark.timeout(240)
def test_gid_eval_on_two_tiny_scenes(tiny_sets, tmp_path, capsys):
    test, train = tiny_sets
    out, rep = tmp_path / "eval.json", tmp_path / "report"
    rc = cli.main(["eval", "--json", str(out), "--report", str(rep), "--data", str(test), "--train-data",
                   str(train), "--samples", "1", "--steps", "2", "--device", "cpu"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["kind"] == "gid-eval" and res["versions"]["numpy"] == np.__version__
    s = res["sets"]["tiny_test"]
    assert [sc["name"] for sc in s["scenes"]] == ["sample_000000", "sample_000001"]
    agg = s["aggregate"]
    assert {"no_motion", "train_mean", "smooth_noise", "truth"} <= set(agg)
    # The model is there, or its absence is said, never faked.
    if res["model"]["status"] == "ok":
        assert "ours" in agg and agg["ours"]["epe_best_px"] <= agg["ours"]["epe_mean_px"] + 1e-9
        # the model's own ceilings: the truth on its grid, and through its VAE, stay close to the truth
        grid, vae = agg["model_grid"], agg["model_vae"]
        assert grid["energy_correlation"] > 0.8 and vae["energy_correlation"] > 0.5
        assert grid["amplitude_error_px"] < 0.6 * agg["no_motion"]["amplitude_error_px"]
        assert 0.5 < grid["amplitude_ratio"] < 1.5
        # a perfect image-only sampler through the same VAE: moves where the truth moves, scored like a sample
        hidden = agg["model_vae_hidden"]
        assert hidden["scenes"] == 2 and hidden["energy_correlation"] > 0.3
        assert 0 < hidden["amplitude_error_px"] < 3 * agg["no_motion"]["amplitude_error_px"]
    else:
        assert "ours" not in agg and res["model"]["why"].startswith("no motion model")
    assert agg["no_motion"]["amplitude_ratio"] == 0 and agg["no_motion"]["motion_amount_px"] == 0
    assert agg["truth"]["motion_amount_px"] > 0
    # smooth noise matches the truth's amount of motion (RMS per frequency), not its place
    assert 0.2 < agg["smooth_noise"]["motion_amount_px"] / agg["truth"]["motion_amount_px"] < 5
    for m in ("train_mean", "smooth_noise"):
        assert -1 <= agg[m]["energy_correlation"] <= 1
    # synthetic scenes carry their seed, so the perfect-sampler ceiling is there: the same scene under a fresh
    # wind moves in the same places (correlated energy) but not identically (the phase is not in the picture)
    for m in ("resimulated", "resimulated_amount", "resimulated_hidden"):
        assert agg[m]["scenes"] == 2 and 0 < agg[m]["amplitude_error_px"] < agg["no_motion"]["amplitude_error_px"] * 3
    assert agg["resimulated"]["energy_correlation"] > 0.5
    assert abs(agg["resimulated_amount"]["amplitude_ratio"] - 1) < 1e-3
    # the --sampler/--guidance choices are recorded (None = the model's defaults)
    assert res["sampler"] is None and res["guidance"] is None
    # exact loops are seamless, cutting the clip is not
    assert agg["truth"]["loop_seam_ratio"] < 1e-3 < 0.3 < agg["truth"]["cut_seam_ratio"]
    render = agg["rendering"]
    assert 10 < render["still"]["psnr"] < 60
    for mode in ("splat", "ibr"):
        assert ("psnr" in render[mode]) or render[mode]["status"] == "missing"
    # sharpness of moving detail beside PSNR/SSIM (issue 25): I0 vs the truth, and the rendered frames
    assert render["still"]["stability"] >= 1.0 and render["still"]["sharpness"] > 0
    assert 0.85 <= render["splat"]["sharpness"] and render["splat"]["stability"] >= 1.0
    assert "sharpness vs truth" in (rep / "index.md").read_text()
    md = (rep / "index.md").read_text()
    assert "| no motion |" in md and "tiny_test_power_spectra.png" in md
    pngs = sorted(rep.glob("*.png"))
    assert len(pngs) >= 5
    for p in pngs:
        assert cv2.imread(str(p)) is not None
    printed = capsys.readouterr().out
    assert "| training-set mean |" in printed and "| ceiling: true physics, fresh wind |" in printed
    if res["model"]["status"] == "ok":
        assert "Bars (issue 5): (a) energy correlation" in printed


def test_gid_eval_bad_input_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["eval", "--json", str(tmp_path / "x.json"), "--data", str(tmp_path / "missing")]) == 1
    assert "no such folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["eval", "--json", str(tmp_path / "x.json"), "--data", str(tmp_path / "empty"),
                     "--no-model"]) == 1


@pytest.mark.timeout(120)
def test_bench_smoke_tiny(tmp_path):
    import torch
    res = bench.run_bench(quick=True, device_name="cpu", sections=("simulate", "roundtrip", "predict"),
                          data_dir=tmp_path, predict_steps=(1, 2))
    assert res["kind"] == "gid-bench" and res["device"].startswith("cpu")
    if res["sections"]["predict"]["status"] == "ok":       # the steps asked for are the steps timed
        assert list(res["sections"]["predict"]["data"]) == ["1", "2"]
    assert res["peak_memory_mb"] > 0
    for name, sec in res["sections"].items():
        assert sec["status"] in ("ok", "missing"), name
        assert sec["status"] == "ok" or sec["why"]
    assert res["sections"]["simulate"]["status"] == "ok"
    splat = bench.bench_splat(torch.device("cpu"), quick=True, size=(48, 32))
    if splat["status"] == "ok":
        assert splat["data"]["C3"]["max_abs_diff"] < 1e-5 and splat["data"]["C3"]["ratio"] > 0
    with pytest.raises(ValueError, match="unknown bench section"):
        bench.run_bench(quick=True, device_name="cpu", sections=("nope",))
    # README tables come from the JSON, between the markers only.
    bench_json = tmp_path / "bench.json"
    bench_json.write_text(json.dumps(res))
    eval_json = tmp_path / "eval.json"
    eval_json.write_text(json.dumps({"kind": "gid-eval", "samples": 1, "seed": 0, "model": {"status": "missing",
                                     "why": "no motion model: test"}, "sets": {}}))
    readme = tmp_path / "README.md"
    readme.write_text("top\n<!-- results:begin -->\nold\n<!-- results:end -->\nmid\n<!-- bench:begin -->\nold\n"
                      "<!-- bench:end -->\nend\n")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme_tables.py"), str(eval_json),
                    str(bench_json), "--readme", str(readme)], check=True, capture_output=True)
    text = readme.read_text()
    assert text.startswith("top\n") and text.endswith("end\n") and "old" not in text
    assert "no motion model: test" in text and "simulate poke" in text
    readme.write_text("no markers\n")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "update_readme_tables.py"), str(eval_json),
                           "--readme", str(readme)], capture_output=True, text=True)
    assert proc.returncode != 0 and "results:begin" in proc.stderr


@pytest.mark.timeout(300)
def test_eval_split_across_processes_merges_to_the_whole_run(tiny_sets, tmp_path):
    """scripts/merge_eval.py: parts of a set (same folder name, seed offset by the scenes before) merge to the
    figures of one run over the whole set; parts run with other settings are refused."""
    test, _ = tiny_sets
    files = sorted(test.glob("sample_*.npz"))
    for part, chosen in (("a", files[:1]), ("b", files[1:])):
        (tmp_path / part / test.name).mkdir(parents=True)
        for f in chosen:
            (tmp_path / part / test.name / f.name).symlink_to(f)
    common = ["--samples", "1", "--steps", "1", "--device", "cpu", "--no-render"]
    runs = {"whole": (test, 0), "a": (tmp_path / "a" / test.name, 0), "b": (tmp_path / "b" / test.name, 1)}
    for name, (folder, seed) in runs.items():
        assert cli.main(["eval", "--json", str(tmp_path / f"{name}.json"), "--data", str(folder),
                         "--seed", str(seed), *common]) == 0
    merge = [sys.executable, str(ROOT / "scripts" / "merge_eval.py")]
    done = subprocess.run([*merge, str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--json",
                           str(tmp_path / "merged.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    whole = json.loads((tmp_path / "whole.json").read_text())["sets"][test.name]["aggregate"]
    merged = json.loads((tmp_path / "merged.json").read_text())["sets"][test.name]["aggregate"]
    assert set(whole) == set(merged)
    for method, figures in whole.items():
        for key, value in figures.items():
            if isinstance(value, float) and key != "predict_s":
                assert merged[method][key] == pytest.approx(value, rel=1e-5, abs=1e-9, nan_ok=True), (method, key)
    # the second part run from seed 0 would sample other noise than the whole run: refused
    done = subprocess.run([*merge, str(tmp_path / "a.json"), str(tmp_path / "a.json"), "--json",
                           str(tmp_path / "bad.json")], capture_output=True, text=True)
    assert done.returncode != 0 and "seed" in done.stderr and not (tmp_path / "bad.json").exists()


@pytest.mark.timeout(300)
def test_bar_b_ceilings_agree_with_gid_eval(tiny_sets, tmp_path):
    """scripts/bar_b_ceilings.py: with one draw (the wind seed gid eval uses) its perfect image-only sampler, alone
    and through the default model's VAE, scores what gid eval's resimulated_hidden / model_vae_hidden do; the
    median of one draw is that draw."""
    test, _ = tiny_sets
    assert cli.main(["eval", "--json", str(tmp_path / "eval.json"), "--data", str(test), "--samples", "1",
                     "--steps", "1", "--device", "cpu", "--no-render"]) == 0
    res = json.loads((tmp_path / "eval.json").read_text())
    if res["model"]["status"] != "ok":
        pytest.skip(f"no default motion model: {res['model']['why']}")
    agg = res["sets"][test.name]["aggregate"]
    ref = agg["no_motion"]["amplitude_error_px"]
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bar_b_ceilings.py"), "--data", str(test),
                           "--checkpoint", str(ROOT / "backend" / "weights" / "default"),
                           str(ROOT / "backend" / "weights" / "default" / "vae"), "--draws", "1",
                           "--json", str(tmp_path / "ceilings.json")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got = json.loads((tmp_path / "ceilings.json").read_text())["vs_no_motion"]
    assert got["hidden"] == pytest.approx(agg["resimulated_hidden"]["amplitude_error_px"] / ref, rel=1e-5)
    assert got["fresh"] == pytest.approx(agg["resimulated"]["amplitude_error_px"] / ref, rel=1e-5)
    assert got["default:truth_vae"] == pytest.approx(agg["model_vae"]["amplitude_error_px"] / ref, rel=1e-5)
    assert got["default:hidden_vae"] == pytest.approx(agg["model_vae_hidden"]["amplitude_error_px"] / ref, rel=1e-5)
    assert got["hidden_median"] == pytest.approx(got["hidden"], rel=1e-6)
    # the model's VAE alone (as a run's vae/ before any denoiser) gives the same ceilings
    for key in ("truth_vae", "hidden_vae", "hidden_median_vae"):
        assert got[f"vae:{key}"] == pytest.approx(got[f"default:{key}"], rel=1e-6)
    # an unseeded (real) clip cannot be re-simulated: a clear refusal
    z = dict(np.load(sorted(test.glob("sample_*.npz"))[0], allow_pickle=False))
    z.pop("seed")
    (tmp_path / "real").mkdir()
    np.savez(tmp_path / "real" / "sample_000000.npz", **z)
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "bar_b_ceilings.py"), "--data",
                           str(tmp_path / "real")], capture_output=True, text=True)
    assert done.returncode == 2 and "no generation seed" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.timeout(300)
def test_gid_eval_reports_real_sets_with_the_semantic_prior_and_still_figure(tiny_sets, tmp_path):
    from backend.eval.report import quality_table_md
    from backend.priors.semantic_amount import FIT_FILE
    test, train = tiny_sets
    # a "real" set: the same scenes without their generation seed (as `gid data from-video` writes them),
    # a third copy so that --spread has something to skip
    real = tmp_path / "real_val"
    real.mkdir()
    for i, src in enumerate(sorted(test.glob("sample_*.npz")) * 2):
        with np.load(src, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("image", "spectral", "valid", "fps", "T")}
        arrays["spectral"][:, :, :, : arrays["spectral"].shape[-1] // 3] = 0     # a still left third
        np.savez(real / f"sample_{i:06d}.npz", **arrays)
    out = tmp_path / "eval.json"
    rc = cli.main(["eval", "--json", str(out), "--data", str(test), str(real), "--train-data", str(train),
                   "--samples", "1", "--steps", "2", "--device", "cpu", "--no-render", "--max-scenes", "2",
                   "--spread"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["sets"]["tiny_test"]["real"] is False and res["sets"]["real_val"]["real"] is True
    # --spread: 2 of the 4 real scenes, first and last
    assert [s["name"] for s in res["sets"]["real_val"]["scenes"]] == ["sample_000000", "sample_000003"]
    agg = res["sets"]["real_val"]["aggregate"]
    assert agg["no_motion"]["still_ratio"] != agg["no_motion"]["still_ratio"]       # NaN: no motion at all
    assert 0 < agg["truth"]["still_fraction"] < 1
    assert agg["smooth_noise"]["still_ratio"] > 0.3                                 # noise ignores where
    if FIT_FILE.is_file():
        assert res["semantic_prior"]["status"] == "ok"
        assert {"semantic_prior", "texture_prior"} <= set(agg) and agg["semantic_prior"]["motion_amount_px"] > 0
        # same amount as the semantic prior, placed by texture
        assert agg["texture_prior"]["motion_amount_px"] == pytest.approx(agg["semantic_prior"]["motion_amount_px"],
                                                                         rel=1e-3)
    table = quality_table_md(res)
    assert "**real_val** (real photos" in table and "**tiny_test** (synthetic" in table
    if res["model"]["status"] == "ok":
        assert "Real-photo bars (issue 20)" in table and "still/moving" in table
        assert "with each scene's amount right, about" in table


def test_bar_b_is_read_against_the_perfect_image_only_denoiser_on_the_models_vae():
    """Issue 20's restated (b): within 0.10 (x no motion) of the ceiling "model_vae_hidden" when it was measured,
    and below the training-set mean; the original <= 0.6x where it was not."""
    from backend.eval.report import _bars_md, motion_bars

    def agg(ours_err, ceiling=None, mean_err=1.2):
        a = {"ours": {"amplitude_error_px": ours_err, "energy_correlation": 0.75, "amplitude_ratio": 1.0},
             "no_motion": {"amplitude_error_px": 1.0},
             "train_mean": {"amplitude_error_px": mean_err, "energy_correlation": 0.1, "amplitude_ratio": 2.0}}
        if ceiling is not None:
            a["model_vae_hidden"] = {"amplitude_error_px": ceiling, "energy_correlation": 0.8}
        return a

    assert motion_bars(agg(0.88, ceiling=0.80))["b_pass"]
    b = motion_bars(agg(0.95, ceiling=0.80))
    assert not b["b_pass"] and abs(b["b_gap"] - 0.15) < 1e-9
    assert "+0.15 from a perfect image-only denoiser" in _bars_md(b) and "**fails**" in _bars_md(b)
    assert not motion_bars(agg(0.85, ceiling=0.80, mean_err=0.84))["b_pass"]   # worse than the mean
    assert not motion_bars(agg(0.88))["b_pass"] and motion_bars(agg(0.55))["b_pass"]   # no ceiling: <= 0.6x
