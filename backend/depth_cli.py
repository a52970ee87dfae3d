"""`gid depth IMAGE -o DEPTH.exr`: estimated inverse depth of a picture (mobilePyDNet + guided upsampling).

The EXR has the picture's size, R = G = B = inverse depth in [0, 1] (1 = nearest, relative scale only); in
Blender use it with Build Depth Layers, depth kind INVERSE.
"""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("depth", help="estimate a depth map of a picture (inverse depth EXR)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("image", help="input picture (any format Pillow reads)")
    p.add_argument("-o", "--output", required=True, help="output .exr (inverse depth, 1 = nearest)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.set_defaults(func=run)


def run(args) -> int:
    from .animate import read_image
    from .priors.depth import estimate_inverse_depth, write_depth_exr

    if not str(args.output).lower().endswith(".exr"):
        raise ValueError(f"output {args.output} must end in .exr")
    image = read_image(args.image)
    depth = estimate_inverse_depth(image, device=args.device)
    write_depth_exr(args.output, depth)
    print(f"wrote {args.output}: {depth.shape[1]}x{depth.shape[0]} inverse depth")
    return 0
