"""`mfnet models ...`: list, add, remove, convert and fetch head models; show one."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import MfnetError
from ..utils.threads import add_threads_argument


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="manage head models (FLAME files, the open ICT-FaceKit model)")
    msub = p.add_subparsers(dest="models_command", metavar="ACTION")
    msub.required = True

    q = msub.add_parser("list", help="list installed models")
    q.set_defaults(func=cmd_list)

    q = msub.add_parser("add", help="install a model: an mfnet .npz, a FLAME .pkl, or a folder of FLAME files")
    q.add_argument("name")
    q.add_argument("path")
    q.set_defaults(func=cmd_add)

    q = msub.add_parser("remove", help="uninstall a model")
    q.add_argument("name")
    q.set_defaults(func=cmd_remove)

    q = msub.add_parser("convert-ict", help="convert an ICT-FaceKit folder (original or repacked) to a model")
    q.add_argument("src", help="ICT-FaceKit folder (with FaceXModel/ or the repacked ict_facekit_vertices.npz)")
    q.add_argument("--dest", help="write the .npz here instead of installing it")
    q.add_argument("--name", default="ict-facekit", help="installed name (default: ict-facekit)")
    _convert_options(q)
    q.set_defaults(func=cmd_convert_ict)

    q = msub.add_parser("fetch", help="download (or copy with --from) and install the open ICT-FaceKit model")
    q.add_argument("which", choices=["ict-facekit"])
    q.add_argument("--from", dest="src", help="local folder, .zip archive or URL of the kit (default: its public repository)")
    _convert_options(q)
    q.set_defaults(func=cmd_fetch)

    q = msub.add_parser("calibrate", help="calibrate a model's 68 landmarks to a detector (renders + detects)")
    q.add_argument("name", nargs="?", default=None, help="installed model name (default: ict-facekit)")
    q.add_argument("--backend", default="mediapipe", choices=["mediapipe", "dlib"])
    q.add_argument("--dense", action="store_true", help="also calibrate MediaPipe's 478-point mesh")
    add_threads_argument(q)
    q.set_defaults(func=cmd_calibrate)

    q = msub.add_parser("show", help="print counts and render a turntable PNG of a model")
    q.add_argument("name", nargs="?", default=None, help="model name or .npz path (default: ict-facekit)")
    q.add_argument("--out", help="turntable PNG path (default: ./<name>-turntable.png)")
    q.add_argument("--views", type=int, default=8, help="number of yaw angles (default 8)")
    q.add_argument("--size", type=int, default=256, help="pixels per view (default 256)")
    add_threads_argument(q)
    q.set_defaults(func=cmd_show)


def _convert_options(q: argparse.ArgumentParser) -> None:
    from ..headmodel.ict_regions import DEFAULT_REGIONS, REGIONS

    q.add_argument("--regions", default=",".join(DEFAULT_REGIONS),
                   help=f"comma-separated regions to keep, from: {', '.join(REGIONS)} (default: %(default)s)")
    q.add_argument("--n-shape", type=int, default=100, help="identity components kept (default 100)")


def _convert_kwargs(args) -> dict:
    from ..headmodel.ict_regions import REGIONS

    regions = tuple(r.strip() for r in args.regions.split(",") if r.strip())
    unknown = [r for r in regions if r not in REGIONS]
    if unknown:
        raise MfnetError(f"unknown region(s) {', '.join(unknown)}; choose from {', '.join(REGIONS)}")
    return {"regions": regions, "n_shape": args.n_shape}


def cmd_list(args) -> int:
    from ..headmodel.registry import list_models, models_dir

    models = list_models()
    if not models:
        print(f"no models installed in {models_dir()} (the open model installs itself on first use, "
              "or run `mfnet models fetch ict-facekit`)")
        return 0
    print(f"{'name':<20} {'vertices':>9} {'faces':>7} {'shape':>6} {'expr':>5}  source")
    for m in models:
        if "error" in m:
            print(f"{m['name']:<20} unreadable: {m['error']}")
            continue
        print(f"{m['name']:<20} {m.get('num_vertices', '?'):>9} {m.get('num_faces', '?'):>7} "
              f"{m.get('num_shape', '?'):>6} {m.get('num_expression', '?'):>5}  {m.get('source', '?')}")
    return 0


def cmd_add(args) -> int:
    from ..calibrate.install import add_model

    dest = add_model(args.name, args.path)
    print(f"installed {args.name} -> {dest}")
    return 0


def cmd_remove(args) -> int:
    from ..headmodel.registry import remove_model

    remove_model(args.name)
    print(f"removed {args.name}")
    return 0


def cmd_convert_ict(args) -> int:
    from ..headmodel.ict import convert_ict
    from ..calibrate.install import install_ict

    kwargs = _convert_kwargs(args)
    if args.dest:
        data = convert_ict(Path(args.src), name=args.name, **kwargs)
        dest = data.save(Path(args.dest))
    else:
        dest = install_ict(Path(args.src), name=args.name, **kwargs)
    print(f"wrote {dest}")
    return 0


def cmd_fetch(args) -> int:
    from ..headmodel.ict import DEFAULT_URL
    from ..headmodel.ict_fetch import fetch_ict
    from ..calibrate.install import install_ict
    from ..headmodel.registry import user_dir

    raw = fetch_ict(args.src or DEFAULT_URL, user_dir() / "ict-facekit-src")
    dest = install_ict(raw, **_convert_kwargs(args))
    print(f"installed ict-facekit -> {dest}")
    return 0


def cmd_calibrate(args) -> int:
    from ..calibrate.install import calibrate_model
    from ..headmodel.registry import DEFAULT_MODEL

    if args.dense and args.backend != "mediapipe":
        raise MfnetError("--dense needs --backend mediapipe (dlib has no dense mesh)")
    path = calibrate_model(args.name or DEFAULT_MODEL, args.backend, dense=args.dense)
    print(f"calibrated {args.backend} landmarks -> {path}")
    return 0


def cmd_show(args) -> int:
    from ..export.preview import render_turntable, save_png
    from ..calibrate.install import load_model

    model = load_model(args.name)
    m = model.data_meta
    print(f"model        {model.name} ({m.get('source', '?')}, license: {m.get('license', '?')})")
    print(f"vertices     {model.num_vertices}")
    print(f"faces        {int(model.faces.shape[0])}")
    print(f"shape        {model.n_shape} components")
    print(f"expression   {model.n_expr} components")
    print(f"joints       {int(model.parents.shape[0])}")
    print(f"UVs          {'yes' if model.has_uvs else 'no'}")
    print(f"landmarks    68 static{' + dynamic contour' if model.has_dynamic_contour else ''}"
          f"{' + MediaPipe' if model.mp_lmk_faces_idx is not None else ''}")
    print(f"masks        {', '.join(sorted(model.masks)) or 'none'}")
    print(f"embeddings   {', '.join(model.embeddings)}")
    out = Path(args.out or f"{model.name}-turntable.png")
    save_png(out, render_turntable(model, n_views=args.views, size=args.size))
    print(f"turntable    {out}")
    return 0
