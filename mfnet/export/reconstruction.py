"""Write a :class:`~mfnet.types.Reconstruction` to a folder, atomically.

Layout of ``out_dir`` (written through :func:`mfnet.utils.io.output_dir`: a new folder appears whole in
one rename; in an existing one only mfnet's own files are replaced, each atomically, and files mfnet did
not write are never touched; on any error the previous ``out_dir`` is left as it was)::

    mesh.obj, mesh.mtl, texture.png   canonical head (view rotation 0), metres, y up, face +z
    mesh.ply, mesh.glb                same mesh (GLB textured when a texture is present)
    params.npz, params.json           coefficients, per-view weak-perspective and OpenCV cameras,
                                      lights, model name/version, NoW landmarks, errors
    flame_params.npz                  FLAME models only: the codes and cameras in the layout FLAME
                                      trackers read (:mod:`mfnet.export.flame_params`)
    landmarks.json                    per view: detected and fitted 68 points (original pixels)
    overlay_<view>.png                per view, when ``photos`` are given
    report.html                       self-contained summary page (see :mod:`mfnet.export.report`)

Posed heads (needed for the cameras' translation and for overlays) come from, in order: the
``posed_vertices`` argument, ``rec.view_vertices`` if the record carries it, or the canonical
mesh rotated by each view rotation about a pivot: the ``pivot`` argument, ``rec.root_joint``, or a
pivot estimated from the fitted landmarks (falling back to the mesh centroid). What was used is
recorded, in words for the reader, in ``params.json`` (``cameras.posed_source``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._version import __version__
from ..headmodel.landmarks import NOW_LANDMARKS
from ..utils.io import atomic_path, output_dir
from . import cameras as cam
from .flame_params import FLAME_PARAMS, is_flame_model, write_flame_params
from .mesh import write_glb, write_obj, write_ply
from .overlay import _to_photo, draw_overlay
from .preview import save_png
from .report import iod_percent, write_report

__all__ = ["write_reconstruction", "ExportCameras", "export_cameras", "draw_overlay", "view_stems", "FORMATS"]

FORMATS = ("obj", "ply", "glb")
NOW_NAMES = ("right_eye_outer", "right_eye_inner", "left_eye_inner", "left_eye_outer", "nose_tip",
             "mouth_right", "mouth_left")
MTL = "newmtl material0\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nd 1\nillum 1\nmap_Kd texture.png\n"


def _np(x, dtype=np.float64):
    """Tensor / array / None -> numpy (or None)."""
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


@dataclass
class ExportCameras:
    """Per-view cameras and posed heads as exported (all numpy, float64)."""

    R_view: np.ndarray  # (N, 3, 3) head rotation per view
    posed: np.ndarray  # (N, V, 3) posed heads (the frame the weak-perspective cameras project)
    offsets: np.ndarray  # (N, 3) posed = R_view X + offsets
    pivot: np.ndarray  # (3,) rotation centre (given, estimated, or fitted to the offsets)
    K: np.ndarray  # (N, 3, 3) original-photo pixels
    R: np.ndarray  # (N, 3, 3) canonical mesh -> OpenCV camera
    t: np.ndarray  # (N, 3)
    posed_source: str
    warnings: list[str] = field(default_factory=list)
    inv_distance: np.ndarray | None = None  # (N,) the fitted cameras' inverse distance, 1/m (0: orthographic)


def export_cameras(rec, posed_vertices=None, pivot=None, focal_factor: float = 50.0) -> ExportCameras:
    """Resolve the posed heads of ``rec`` and convert its weak-perspective cameras to OpenCV."""
    X = _np(rec.vertices)
    n = len(rec.names)
    R_view = cam.axis_angle_to_matrix(_np(rec.views.rotation).reshape(n, 3))
    centroid = X.mean(0)
    k = cam.inv_distances(rec.views)
    warns: list[str] = []
    posed = posed_vertices if posed_vertices is not None else getattr(rec, "view_vertices", None)
    if posed is not None:
        posed = _np(posed)
        if posed.shape != (n,) + X.shape:
            raise ValueError(f"posed vertices must have shape {(n,) + X.shape}, got {posed.shape}")
        source = "the fitted head as posed in each view"
        offsets, rms = cam.rigid_offsets(X, posed, R_view)
        size = float(np.ptp(X, axis=0).max())
        bad = np.flatnonzero(rms > 0.01 * size)
        if len(bad):
            warns.append(f"posed vertices of view(s) {bad.tolist()} are not the canonical mesh rotated by the view "
                         f"rotation (RMS {rms.max() * 1000:.1f} mm); OpenCV cameras use the mean offset")
        piv = cam.pivot_from_offsets(offsets, R_view, centroid)
    else:
        if pivot is not None:
            piv, source = _np(pivot).reshape(3), "the head rotated about the given pivot"
        elif getattr(rec, "root_joint", None) is not None:
            piv, source = _np(rec.root_joint).reshape(3), "the head rotated about the model's root joint"
        else:
            piv, rms_px = cam.estimate_pivot(_np(rec.landmarks3d), _np(rec.fitted_landmarks), R_view,
                                             _np(rec.views.scale), _np(rec.views.trans), rec.crop_size,
                                             _np(rec.crop_to_original), centroid, k)
            fl = _np(rec.fitted_landmarks)
            face_px = float(np.nanmax(np.nanmax(fl, 1) - np.nanmin(fl, 1))) if np.isfinite(fl).any() else 1.0
            source = "the head rotated about a pivot estimated from the fitted landmarks"
            if not np.isfinite(rms_px) or rms_px > 0.05 * max(face_px, 1.0):
                piv, source = centroid, "the head rotated about the mesh centroid (approximate)"
                warns.append("fitted landmarks do not match the cameras; posed heads rotate about the mesh centroid")
        posed = cam.posed_from_pivot(X, R_view, piv)
        offsets = piv[None] - np.einsum("nij,j->ni", R_view, piv)
    lo, hi = posed.min(1), posed.max(1)
    K, R, t = cam.weak_to_opencv(_np(rec.views.scale), _np(rec.views.trans), rec.crop_size,
                                 _np(rec.crop_to_original), R_view, offsets, 0.5 * (lo + hi), focal_factor, k)
    return ExportCameras(R_view, posed, offsets, piv, K, R, t, source, warns, k)


def view_stems(names) -> list[str]:
    """Unique, file-system-safe stems for the view names (``photos/IMG 1.jpg`` -> ``IMG_1``)."""
    out, seen = [], set()
    for i, name in enumerate(names):
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name)).stem).strip("._") or f"view{i}"
        s, k = stem, 1
        while s.lower() in seen:
            k += 1
            s = f"{stem}_{k}"
        seen.add(s.lower())
        out.append(s)
    return out


def _write_meshes(d: Path, rec, formats) -> list[str]:
    V, F = _np(rec.vertices), np.asarray(_np(rec.faces, np.int64))
    vt, ft = _np(rec.vt), _np(rec.ft, np.int64)
    tex = None if rec.texture is None else np.asarray(rec.texture, np.uint8)
    textured = tex is not None and vt is not None and ft is not None
    if "obj" in formats:
        write_obj(d / "mesh.obj", V, F, vt, ft, texture=tex if textured else None)
        if textured:  # write_obj names the texture after the mesh; the layout wants texture.png
            os.replace(d / "mesh.png", d / "texture.png")
            with atomic_path(d / "mesh.mtl") as tmp:
                tmp.write_text(MTL)
    if tex is not None and not (d / "texture.png").exists():
        save_png(d / "texture.png", tex)
    if "ply" in formats:
        write_ply(d / "mesh.ply", V, F)
    if "glb" in formats:
        write_glb(d / "mesh.glb", V, F, vt if textured else None, ft if textured else None,
                  tex if textured else None)
    return sorted(p.name for p in d.iterdir())


def _write_neutral(d: Path, rec) -> None:
    if getattr(rec, "neutral_vertices", None) is None:
        raise ValueError("this reconstruction has no neutral head (neutral_vertices); reconstruct it again")
    V, F = _np(rec.neutral_vertices), np.asarray(_np(rec.faces, np.int64))
    vt, ft = _np(rec.vt), _np(rec.ft, np.int64)
    write_obj(d / "neutral.obj", V, F, vt, ft)
    if (d / "mesh.mtl").exists():  # share the fitted mesh's material and texture
        text = (d / "neutral.obj").read_text().replace("# written by mfnet\n",
                                                        "# written by mfnet\nmtllib mesh.mtl\nusemtl material0\n", 1)
        with atomic_path(d / "neutral.obj") as tmp:
            tmp.write_text(text)
    write_ply(d / "neutral.ply", V, F)


def _lists(a):
    return None if a is None else np.asarray(a, np.float64).tolist()


def _clean(x):
    """JSON-safe copy: non-finite floats become null (strict JSON has no NaN / Infinity)."""
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def _dump_json(path: Path, doc) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False))


def _write_params(d: Path, rec, cams: ExportCameras, stems, model_version) -> None:
    """params.npz (arrays) and params.json (the same, readable, with the cameras' conventions)."""
    arrays = _param_arrays(rec, cams, model_version)
    with atomic_path(d / "params.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    _dump_json(d / "params.json", _params_doc(rec, cams, stems, model_version, arrays))


def _param_arrays(rec, cams: ExportCameras, model_version) -> dict[str, np.ndarray]:
    n, head = len(rec.names), rec.head
    lmk3d = _np(rec.landmarks3d)
    arrays = {
        "shape": _np(head.shape), "expression": _np(head.expression), "jaw": _np(head.jaw),
        "rotation": _np(rec.views.rotation).reshape(n, 3), "rotation_matrix": cams.R_view,
        "scale": _np(rec.views.scale).reshape(n), "trans": _np(rec.views.trans).reshape(n, 2),
        "inv_distance": cams.inv_distance,
        "crop_size": np.int64(rec.crop_size), "crop_to_original": _np(rec.crop_to_original),
        "K": cams.K, "R": cams.R, "t": cams.t, "pivot": cams.pivot, "posed_offset": cams.offsets,
        "landmarks3d": lmk3d, "now_landmarks3d": lmk3d[list(NOW_LANDMARKS)],
        "now_landmark_indices": np.asarray(NOW_LANDMARKS),
        "reprojection_error_px": np.asarray(rec.reprojection_error_px, np.float64),
        "names": np.asarray([str(x) for x in rec.names], dtype=str),
        "model_name": np.asarray(str(rec.model_name)), "model_version": np.asarray(str(model_version or "")),
    }
    if getattr(rec, "neutral_shape", None) is not None:
        arrays["neutral_shape"] = _np(rec.neutral_shape)
    for key in ("neck", "eyes"):
        if getattr(head, key, None) is not None:
            arrays[key] = _np(getattr(head, key))
    light = _np(rec.views.light)
    if light is not None:
        arrays["light"] = light
    if rec.calibrated_cameras is not None:  # a calibrated rig (mfnet reconstruct --cameras)
        arrays.update({f"rig_{k}": np.asarray(v) for k, v in rec.calibrated_cameras.items()})
    return arrays


def _view_entry(rec, cams: ExportCameras, stems, arrays: dict, i: int) -> dict:
    light, err = arrays.get("light"), arrays["reprojection_error_px"]
    return {
        "name": str(rec.names[i]), "stem": stems[i],
        "rotation_axis_angle": _lists(arrays["rotation"][i]), "rotation_matrix": _lists(cams.R_view[i]),
        "yaw_pitch_roll_deg": _lists(cam.euler_degrees(cams.R_view[i])),
        "weak_perspective": {"scale": float(arrays["scale"][i]), "trans": _lists(arrays["trans"][i]),
                             "inv_distance": float(arrays["inv_distance"][i]),
                             "crop_size": int(rec.crop_size),
                             "crop_to_original": _lists(arrays["crop_to_original"][i])},
        "opencv": {"K": _lists(cams.K[i]), "R": _lists(cams.R[i]), "t": _lists(cams.t[i]),
                   "rvec": _lists(cam.matrix_to_axis_angle(cams.R[i])), "dist": [0.0] * 5},
        "light_sh": _lists(light[i]) if light is not None else None,
        "reprojection_error_px": float(err[i]),
        "reprojection_error_iod_percent": float(iod_percent(rec)[i]),
    }


def _params_doc(rec, cams: ExportCameras, stems, model_version, arrays: dict) -> dict:
    n, err = len(rec.names), arrays["reprojection_error_px"]
    doc = {
        "format": "mfnet-reconstruction/1", "mfnet_version": __version__,
        "model": {"name": str(rec.model_name), "version": model_version},
        "units": "metres; head frame y up, face towards +z",
        "head": {"shape": _lists(arrays["shape"]), "expression": _lists(arrays["expression"]),
                 "jaw": _lists(arrays["jaw"]), "neck": _lists(arrays.get("neck")), "eyes": _lists(arrays.get("eyes")),
                 "neutral_shape": _lists(arrays.get("neutral_shape"))},
        "views": [_view_entry(rec, cams, stems, arrays, i) for i in range(n)],
        "cameras": {
            "weak_perspective": "x_r = c/2 + s*c/2*(P_x + t_x), y_r = c/2 - s*c/2*(P_y + t_y) in renderer crop "
                                "pixels (centres at +0.5); crop_to_original maps them to original pixels",
            "opencv": "x ~ K (R X + t) with X the canonical mesh (mesh.obj), original-photo pixels with pixel "
                      "centres at integers; a long-focal pinhole approximating the weak perspective",
            "posed": "posed head of a view = R_view X + posed_offset = R_view (X - pivot) + pivot",
            "posed_source": cams.posed_source, "pivot": _lists(cams.pivot),
        },
        "now_landmarks3d": {"indices": list(NOW_LANDMARKS), "names": list(NOW_NAMES),
                            "points": _lists(arrays["now_landmarks3d"])},
        "reprojection_error_px": {"per_view": _lists(err), "mean": float(err.mean()) if n else None},
        "reprojection_error_iod_percent": {"per_view": _lists(iod_percent(rec)),
                                           "note": "percent of the inter-ocular distance (outer eye corners)"},
        "timings_s": {k: float(v) for k, v in rec.timings.items()},
    }
    calib = rec.calibrated_cameras
    if calib is not None:
        doc["calibrated_rig"] = {"note": "the given cameras (x ~ K (R X + t), original pixels) and the fitted head "
                                         "pose in the rig's world frame: X_world = R_head (X - J0) + J0 + T",
                                 **{k: _lists(np.asarray(v)) for k, v in calib.items()}}
    return doc


def _write_landmarks(d: Path, rec, stems, with_overlays: bool) -> None:
    det, fit = _np(rec.detected_landmarks), _np(rec.fitted_landmarks)
    err = np.asarray(rec.reprojection_error_px, np.float64)
    iod = iod_percent(rec)
    views = [{"name": str(rec.names[i]), "image": Path(str(rec.names[i])).name, "stem": stems[i],
              "detected": det[i].tolist(), "fitted": fit[i].tolist(), "mean_error_px": float(err[i]),
              "mean_error_iod_percent": float(iod[i]),
              "overlay": f"overlay_{stems[i]}.png" if with_overlays else None} for i in range(len(rec.names))]
    doc = {"convention": "iBUG-68 points in original-photo pixels, pixel centres at integers (OpenCV)",
           "mean_error_px": float(err.mean()) if len(err) else None, "views": views}
    _dump_json(d / "landmarks.json", doc)


def write_reconstruction(rec, out_dir: str | os.PathLike, *, posed_vertices=None, photos=None,
                         formats=FORMATS, report: bool = True, pivot=None, original_sizes=None,
                         model_version: str | None = None, focal_factor: float = 50.0, overwrite: bool = False,
                         protect=(), neutral: bool = False) -> Path:
    """Write ``rec`` into ``out_dir`` (replaced atomically; see the module docstring for the layout).

    Args:
        posed_vertices: (N, V, 3) posed heads in the frame the weak-perspective cameras project.
        photos: N (H, W, 3) uint8 RGB photos for the overlays (none are drawn without them).
        formats: any of ``'obj'``, ``'ply'``, ``'glb'``.
        report: write ``report.html``.
        pivot: (3,) rotation centre of the views (the model's root joint) if no posed vertices.
        original_sizes: N ``(H, W)`` of the original photos, when ``photos`` are downscaled copies
            (default: ``rec.original_sizes`` if present, else the photos are taken as the originals).
        model_version: recorded in params and report (default: ``rec.model_version`` if present).
        focal_factor: the OpenCV focal length in crop sizes (larger = closer to orthographic).
        overwrite: write into an existing folder that holds files mfnet did not write (they are kept).
        protect: paths never replaced (the input photos).
        neutral: also write ``neutral.obj`` (+ ``neutral.ply``): the neutral head (no expression, jaw
            closed; :mod:`mfnet.fit.neutral`), same topology and UVs, sharing ``mesh.mtl`` / ``texture.png``.
    Returns the output folder.
    """
    formats = tuple(formats)
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown mesh format(s) {sorted(unknown)}: choose from {', '.join(FORMATS)}")
    n = len(rec.names)
    if photos is not None and len(photos) != n:
        raise ValueError(f"{len(photos)} photos for {n} views")
    if original_sizes is None:
        original_sizes = getattr(rec, "original_sizes", None) or None
    cams = export_cameras(rec, posed_vertices, pivot, focal_factor)
    stems = view_stems(rec.names)
    model_version = model_version or getattr(rec, "model_version", None)
    warnings = list(rec.warnings) + cams.warnings
    faces = np.asarray(_np(rec.faces, np.int64))
    with output_dir(out_dir, overwrite=overwrite, protect=protect) as tmp:
        tmp = Path(tmp)
        _write_meshes(tmp, rec, formats)
        if neutral:
            _write_neutral(tmp, rec)
        _write_params(tmp, rec, cams, stems, model_version)
        meta = rec.model_meta
        if is_flame_model(meta):  # FLAME codes other FLAME tools read
            sizes = original_sizes or ([np.asarray(p).shape[:2] for p in photos] if photos is not None else None)
            write_flame_params(tmp / FLAME_PARAMS, rec, cams.K, cams.R, cams.t, sizes, meta)
        overlays = [] if photos is None else _write_overlays(tmp, rec, cams, photos, original_sizes, stems, faces)
        _write_landmarks(tmp, rec, stems, photos is not None)
        if report:
            write_report(tmp / "report.html", rec, cams=cams, overlays=overlays, warnings=warnings,
                         model_version=model_version, files=sorted(p.name for p in tmp.iterdir()) + ["report.html"])
    return Path(out_dir)


def _write_overlays(tmp: Path, rec, cams, photos, original_sizes, stems, faces) -> list[tuple[str, str, np.ndarray]]:
    """``overlay_<view>.png`` per photo (the fitted mesh, detected and fitted landmarks, the person outline
    where the silhouette term had one); [(view name, file name, image)] for the report."""
    pts = cam.project_weak(cams.posed, _np(rec.views.scale), _np(rec.views.trans), rec.crop_size,
                           _np(rec.crop_to_original), cams.inv_distance)
    outlines = getattr(rec, "person_outlines", None)
    overlays = []
    for i, photo in enumerate(photos):
        hw = np.asarray(photo).shape[:2]
        ohw = original_sizes[i] if original_sizes else None
        img = draw_overlay(photo, _to_photo(pts[i], hw, ohw), cams.posed[i], faces,
                           _to_photo(_np(rec.detected_landmarks)[i], hw, ohw),
                           _to_photo(_np(rec.fitted_landmarks)[i], hw, ohw),
                           outlines=None if outlines is None else [_to_photo(c, hw, ohw) for c in outlines[i]])
        fname = f"overlay_{stems[i]}.png"
        save_png(tmp / fname, img)
        overlays.append((str(rec.names[i]), fname, img))
    return overlays


def save_reconstruction(rec, out_dir: str | os.PathLike, **kwargs) -> Path:
    """:func:`write_reconstruction` with the record's own posed heads and photos as defaults; what
    ``Reconstruction.save()`` does."""
    kwargs.setdefault("posed_vertices", getattr(rec, "posed_vertices", None))
    kwargs.setdefault("photos", getattr(rec, "photos", None))
    return write_reconstruction(rec, out_dir, **kwargs)


def _serve_reconstruction_save() -> None:
    """``Reconstruction.save()`` writes with :func:`save_reconstruction` (the record cannot import
    the exporter: it sits below it in the layer order)."""
    from ..types import Reconstruction

    Reconstruction.writer = save_reconstruction


_serve_reconstruction_save()
