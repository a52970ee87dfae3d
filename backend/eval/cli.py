"""`gid eval` and `gid bench`: parse arguments, call backend.eval, write JSON (and the report folder)."""
from __future__ import annotations

import sys
from pathlib import Path

from backend.motion.config import SAMPLERS

DEFAULT_TEST = Path("runs/data/synth_test")
DEFAULT_REAL = Path("runs/data/loops/val")
DEFAULT_TRAIN = [Path("runs/data/synth_train")]


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_eval(args) -> int:
    from .evaluate import ensure_synth_test, run_eval, write_json_atomic
    if args.data:
        data = [Path(d) for d in args.data]
        for d in data:
            if not d.is_dir():
                raise FileNotFoundError(f"--data {d}: no such folder")
    else:
        ensure_synth_test(DEFAULT_TEST)
        data = [DEFAULT_TEST] + ([DEFAULT_REAL] if any(DEFAULT_REAL.glob("sample_*.npz")) else [])
    results, arrays = run_eval(
        data, samples=args.samples, steps=args.steps, checkpoint=args.checkpoint,
        train_data=args.train_data if args.train_data is not None else DEFAULT_TRAIN, seed=args.seed,
        device=args.device, max_scenes=args.max_scenes, use_model=not args.no_model,
        use_renderer=not args.no_render, progress=_say, command=["gid"] + sys.argv[1:],
        guidance=args.guidance, sampler=args.sampler, refine=not args.no_refine, spread=args.spread,
        use_semantic=not args.no_semantic_prior, semantic_fit=args.semantic_fit)
    write_json_atomic(args.json, results)
    _say(f"wrote {args.json}")
    if args.report:
        from .evaluate import load_renderer
        from .report import write_report
        renderer = load_renderer(args.device)[0] if not args.no_render else None
        path = write_report(args.report, results, arrays, renderer)
        _say(f"wrote {path}")
    from .report import quality_table_md
    print(quality_table_md(results))
    return 0


def cmd_bench(args) -> int:
    from .bench import GPU_SECTION, SECTIONS, run_bench
    from .evaluate import write_json_atomic
    default = SECTIONS + ((GPU_SECTION,) if args.device == "cuda" else ())
    result = run_bench(quick=args.quick, device_name=args.device, checkpoint=args.checkpoint,
                       data_dir=args.data, sections=args.sections or default, progress=_say,
                       predict_steps=args.predict_steps, compile_backend=args.compile)
    write_json_atomic(args.json, result)
    from .report import bench_table_md
    print(bench_table_md(result))
    _say(f"wrote {args.json} ({result['seconds']} s)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate motion prediction and rendering on held-out scenes",
                              description="Weight-free figures (SPEC section 7) of the model and the baselines "
                                          "(no motion, training-set mean, smooth noise) per scene and aggregated.")
    p.add_argument("--json", required=True, help="output JSON file")
    p.add_argument("--report", help="folder for a markdown report with PNG figures")
    p.add_argument("--data", nargs="+", help=f"test set folders of sample_*.npz (default: {DEFAULT_TEST}, "
                                              f"generated if missing, and {DEFAULT_REAL} if present)")
    p.add_argument("--train-data", nargs="*", help="training folders for the mean baseline "
                                                   f"(default: {DEFAULT_TRAIN[0]})")
    p.add_argument("--samples", type=int, default=4, help="model samples per scene (best-of-N EPE)")
    p.add_argument("--checkpoint", help="motion model checkpoint folder (default: shipped weights)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--sampler", choices=SAMPLERS, help="sampler (default: the model's)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--max-scenes", type=int, help="only the first N scenes of each set")
    p.add_argument("--spread", action="store_true",
                   help="with --max-scenes: N scenes evenly spaced over each set instead of the first N (a real "
                        "set holds several windows of each clip in a row)")
    p.add_argument("--no-semantic-prior", action="store_true", help="skip the semantic-prior baseline (ESPNet)")
    p.add_argument("--semantic-fit", help="semantic-prior fit JSON (default: the shipped "
                                          "backend/weights/priors/espnet/semantic_amounts.json)")
    p.add_argument("--no-refine", action="store_true",
                   help="skip the model's image-guided refiner (motion on its working grid, as the VAE decodes it)")
    p.add_argument("--no-model", action="store_true", help="baselines only")
    p.add_argument("--no-render", action="store_true", help="skip rendering scores")
    p.set_defaults(func=cmd_eval)

    b = subparsers.add_parser("bench", help="speed benchmarks side by side (JSON)",
                              description="Splat vs reference, predict vs steps, render frames/s, ZeroMQ round "
                                          "trip, modal simulation, Blender frame evaluation.")
    b.add_argument("--json", required=True, help="output JSON file")
    b.add_argument("--quick", action="store_true", help="small sizes, fewer repeats (< 60 s on 2 cores)")
    b.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    b.add_argument("--checkpoint", help="motion model checkpoint folder (default: shipped weights)")
    b.add_argument("--data", default="runs/data/synth_test", help="held-out scenes for predict EPE")
    b.add_argument("--sections", nargs="+", help="only these sections")
    b.add_argument("--predict-steps", nargs="+", type=int, help="sampler steps timed by the predict section "
                   "(default 10 25 50 250; --quick: 10)")
    b.add_argument("--compile", default=None, metavar="BACKEND",
                   help="gpu section: also time the batched renderer under torch.compile with this backend "
                        "(e.g. inductor); the gpu section runs by default with --device cuda")
    b.set_defaults(func=cmd_bench)
