"""Photo-realistic renders of the Lee Perry-Smith head scan for the real-scan benchmark.

**Scan** (``lee-perry-smith/LeePerrySmith.glb``, read with trimesh; its UVs' v is flipped to the
renderer's convention, texture row = (1 - v) H): a bust in arbitrary units, Y up, face towards +Z,
eyes closed.  It has no landmarks and no units, so (:func:`load_lee`)

1. it is rendered frontally (studio light, plain background) framed on the whole bust, MediaPipe finds
   the face; a second frontal render framed on that face (1024 px, face about 600 px wide) is
   detected again and the 68 iBUG points are **back-projected** onto the surface: the rasteriser's
   depth at the point (bilinear between pixel centres) unprojected through the known camera;
2. it is scaled to **mm** so that the distance between the eye centres (mean of each eye's six iBUG
   points, :func:`mfnet.evaluate.synthetic.pupil_distance`) is 62.85 mm (the FaceScape / project
   convention, a typical adult inter-pupil distance) and centred on the nose bottom (iBUG 33).

**Photos** (:func:`render_shot`): the project's renderer (:class:`mfnet.render.Renderer`, perspective
camera, 2x supersampled then area-downsampled) samples the scan's own colour map ``Map-COL.jpg`` and
specular map ``Map-SPEC.jpg`` (one 6-channel texture); shading per pixel = albedo x (hemisphere
ambient + Lambert of each directional light) + specular map x Blinn-Phong highlight of each light
(exponent 40; no shadows, the tangent-space normal map is not used).  Lighting set-ups: :data:`LIGHTS`.
Backgrounds: plain (a soft vertical gradient) or cluttered (procedural rectangles, discs and stripes,
blurred as if out of focus; fixed seed).  The head turns about a point 95 mm behind the nose bottom
(yaw > 0: the face turns to its left, as in :mod:`mfnet.data.synthetic`; pitch > 0: the face tilts
down), the camera (40-100 cm away) looks at the centre of the face.  Sensor noise: Gaussian, sigma
1.5/255, seeded.  Everything is deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import MfnetError
from ..utils.rotation import FLIP
from .scans import Scan, cache_dir, cache_key, face_frame, realscans_dir

PIVOT_BEHIND_MM = 95.0  # the head turns about a point this far behind the nose bottom
FACE_WIDTH_MM_REF = 140.0  # face width (jaw contour 0-16) assumed when choosing the focal length
SPEC_EXPONENT = 40.0
NOISE_SIGMA = 1.5 / 255


@dataclass(frozen=True)
class Light:
    """Directional lights (unit vectors towards each light, world frame: x right, y up, z towards the
    camera), their RGB intensities, an RGB hemisphere ambient and a specular strength."""

    dirs: tuple
    colors: tuple
    ambient: tuple
    specular: float = 0.35


def _unit(*v) -> tuple:
    a = np.asarray(v, np.float64)
    return tuple((a / np.linalg.norm(a)).tolist())


LIGHTS: dict[str, Light] = {
    "studio": Light((_unit(-0.6, 0.5, 1.0), _unit(0.8, 0.2, 0.8)), ((0.62, 0.60, 0.58), (0.25, 0.25, 0.27)),
                    (0.32, 0.32, 0.33), 0.35),
    "side": Light((_unit(1.0, 0.25, 0.35),), ((0.85, 0.80, 0.72),), (0.22, 0.23, 0.26), 0.45),
    "warm": Light((_unit(0.3, 0.9, 0.6), _unit(-0.5, 0.0, 1.0)), ((0.60, 0.47, 0.33), (0.22, 0.20, 0.16)),
                  (0.30, 0.26, 0.22), 0.30),
    "window": Light((_unit(-1.0, 0.3, 0.6),), ((0.70, 0.74, 0.80),), (0.30, 0.31, 0.34), 0.40),
    "overcast": Light((_unit(0.0, 1.0, 0.5),), ((0.35, 0.36, 0.38),), (0.50, 0.50, 0.52), 0.15),
}


@dataclass(frozen=True)
class Shot:
    """One photo: head yaw/pitch (degrees), lighting, background, camera distance (mm), face width in
    pixels (sets the focal length), image size (H, W) and the seed of background and noise."""

    yaw: float = 0.0
    pitch: float = 0.0
    light: str = "studio"
    background: str = "plain"
    distance_mm: float = 600.0
    face_px: float = 380.0
    size: tuple = (800, 640)
    seed: int = 0


@dataclass(frozen=True)
class LeeCase:
    description: str
    shots: tuple


def _set(yaws, light, background, distance, face_px=380.0, size=(800, 640), pitch=0.0, seed=0) -> tuple:
    return tuple(Shot(float(y), pitch, light, background, distance, face_px, size, seed + k)
                 for k, y in enumerate(yaws))


LEE_CASES: dict[str, LeeCase] = {
    "lee-1": LeeCase("Lee, 1 render, frontal, studio light, plain background, 60 cm",
                     _set((0,), "studio", "plain", 600)),
    "lee-1-y30": LeeCase("Lee, 1 render, yaw +30, window light, cluttered, 50 cm",
                         _set((30,), "window", "clutter", 500, seed=10)),
    "lee-1-y60": LeeCase("Lee, 1 render, yaw -60, side light, cluttered, 80 cm",
                         _set((-60,), "side", "clutter", 800, seed=20)),
    "lee-1-y75": LeeCase("Lee, 1 render, yaw +75, studio light, plain, 100 cm",
                         _set((75,), "studio", "plain", 1000, seed=30)),
    "lee-1-p20": LeeCase("Lee, 1 render, pitch +20 (face down), warm light, cluttered, 45 cm",
                         _set((0,), "warm", "clutter", 450, pitch=20.0, seed=40)),
    "lee-1-pm20": LeeCase("Lee, 1 render, yaw -15, pitch -20 (face up), overcast, plain, 70 cm",
                          _set((-15,), "overcast", "plain", 700, pitch=-20.0, seed=50)),
    "lee-30": LeeCase("Lee, 3 renders (0, -30, +30), studio light, cluttered, 60 cm",
                      _set((0, -30, 30), "studio", "clutter", 600, seed=60)),
    "lee-60": LeeCase("Lee, 3 renders (0, -60, +60), side light, cluttered, 60 cm",
                      _set((0, -60, 60), "side", "clutter", 600, seed=70)),
    "lee-lowres": LeeCase("Lee, 3 renders (0, -30, +30), low resolution (face ~200 px), overcast, plain, 100 cm",
                          _set((0, -30, 30), "overcast", "plain", 1000, face_px=200.0, size=(400, 320), seed=80)),
}
#: small variant for --quick and tests: a frontal render at 480x384
QUICK_LEE_CASE = "lee-1-small"
LEE_CASES[QUICK_LEE_CASE] = LeeCase("Lee, 1 small frontal render (face ~240 px), studio light, plain, 60 cm",
                                    _set((0,), "studio", "plain", 600, face_px=240.0, size=(480, 384), seed=90))


# --------------------------------------------------------------------------- the raw scan
@dataclass
class LeeRaw:
    vertices: np.ndarray  # (V, 3) glb units
    faces: np.ndarray
    uv: np.ndarray  # (V, 2), v up
    texture: np.ndarray  # (6, T, T) float32: colour RGB then specular RGB, in [0, 1]


def lee_dir(root=None) -> Path:
    return realscans_dir(root) / "lee-perry-smith"


def load_lee_raw(root=None) -> LeeRaw:
    try:
        import trimesh
    except ImportError:  # pragma: no cover
        raise MfnetError("the Lee Perry-Smith case needs trimesh (pip install trimesh) to read the .glb") from None
    from PIL import Image

    d = lee_dir(root)
    scene = trimesh.load(d / "LeePerrySmith.glb", process=False)
    mesh = scene.to_geometry() if hasattr(scene, "to_geometry") else scene.dump(concatenate=True)
    uv = np.asarray(mesh.visual.uv, np.float64).copy()
    uv[:, 1] = 1.0 - uv[:, 1]  # trimesh's glTF UVs -> the renderer's (row = (1 - v) H)
    tex = [np.asarray(Image.open(d / n).convert("RGB"), np.float32) / 255.0 for n in ("Map-COL.jpg", "Map-SPEC.jpg")]
    return LeeRaw(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64), uv,
                  np.concatenate([t.transpose(2, 0, 1) for t in tex], 0))


# --------------------------------------------------------------------------- rendering
def _rot(yaw: float, pitch: float) -> np.ndarray:
    a, b = math.radians(yaw), math.radians(pitch)
    Ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    return Ry @ Rx


def background(kind: str, size: tuple, seed: int) -> np.ndarray:
    """(H, W, 3) float32 background: 'plain' (soft gradient) or 'clutter' (procedural shapes, blurred)."""
    import cv2

    H, W = size
    rng = np.random.default_rng(1000 + seed)
    base = rng.uniform(0.25, 0.75, 3).astype(np.float32)
    ramp = np.linspace(1.08, 0.88, H, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(base * ramp, (H, W, 3)).copy()
    if kind == "plain":
        return img.clip(0, 1)
    if kind != "clutter":
        raise ValueError(f"unknown background {kind!r}: plain or clutter")
    for _ in range(40):
        c = tuple(float(x) for x in rng.uniform(0.05, 0.95, 3))
        x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        s = int(rng.integers(max(H, W) // 30, max(H, W) // 4))
        k = rng.integers(0, 3)
        if k == 0:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.3, 2.0))), c, -1)
        elif k == 1:
            cv2.circle(img, (x, y), s // 2, c, -1)
        else:
            cv2.line(img, (x, 0), (x + int(rng.integers(-W // 3, W // 3)), H), c, max(2, s // 8))
    sig = max(H, W) / 250.0
    return cv2.GaussianBlur(img, (0, 0), sig).clip(0, 1)


def shot_focal_px(shot: Shot) -> float:
    """The focal length (pixels) of ``shot``'s camera: the face (``FACE_WIDTH_MM_REF`` wide) ``shot.face_px``
    wide from ``shot.distance_mm``."""
    return shot.face_px * shot.distance_mm / FACE_WIDTH_MM_REF


def camera_for(shot: Shot, face_centre_mm: np.ndarray):
    """(K (3,3), R, t) of an OpenCV camera ``shot.distance_mm`` in front of (+z) ``face_centre_mm``,
    looking at it, renderer pixel convention, focal length giving ``shot.face_px`` for 140 mm."""
    H, W = shot.size
    f = shot_focal_px(shot)
    K = np.array([[f, 0, W / 2.0], [0, f, H / 2.0], [0, 0, 1.0]])
    R = FLIP.copy()
    eye = np.asarray(face_centre_mm, np.float64) + np.array([0.0, 0.0, shot.distance_mm])
    return K, R, -R @ eye


def render_shot(vertices_mm: np.ndarray, faces: np.ndarray, uv: np.ndarray, texture: np.ndarray, shot: Shot,
                face_centre_mm: np.ndarray, supersample: int = 2) -> tuple[np.ndarray, tuple]:
    """(H, W, 3) uint8 photo of the (already posed) scan and its camera (K, R, t)."""
    import cv2
    import torch

    from ..render import PerspectiveCameras, Renderer

    H, W = shot.size
    K, R, t = camera_for(shot, face_centre_mm)
    ss = int(supersample)
    Ks = K.copy()
    Ks[:2] *= ss
    f32 = torch.float32
    cams = PerspectiveCameras(torch.tensor(Ks[None], dtype=f32), torch.tensor(R[None], dtype=f32),
                              torch.tensor(t[None], dtype=f32))
    v = torch.tensor(np.asarray(vertices_mm)[None], dtype=f32)
    with torch.no_grad():
        tex = torch.tensor(texture[None], dtype=f32)
        out = Renderer((H * ss, W * ss)).render(v, torch.as_tensor(faces), cams, texture=tex,
                                                vt=torch.tensor(uv, dtype=f32), ft=torch.as_tensor(faces))
    img = out.image[0].permute(1, 2, 0).numpy().astype(np.float64)  # (h, w, 6): colour, specular
    mask = out.mask[0, 0].numpy() > 0
    n = out.normals[0].permute(1, 2, 0).numpy().astype(np.float64)
    depth = out.depth[0, 0].numpy().astype(np.float64)
    h, w = mask.shape
    jj, ii = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    ray = np.stack([jj, ii, np.ones_like(jj)], -1) @ np.linalg.inv(Ks).T  # camera frame, z = 1
    view = -(ray * depth[..., None]) @ R  # world direction towards the camera (unnormalised), R^T x
    view /= np.linalg.norm(view, axis=-1, keepdims=True).clip(1e-9)
    light = LIGHTS[shot.light]
    albedo, spec = img[..., :3], img[..., 3:].mean(-1, keepdims=True)
    diffuse = np.asarray(light.ambient) * (0.8 + 0.2 * n[..., 1:2])
    highlight = np.zeros_like(diffuse)
    for d, c in zip(light.dirs, light.colors):
        d = np.asarray(d)
        ndl = (n @ d)[..., None]
        diffuse = diffuse + np.asarray(c) * ndl.clip(0, None)
        hv = view + d
        hv /= np.linalg.norm(hv, axis=-1, keepdims=True).clip(1e-9)
        ndh = (n * hv).sum(-1, keepdims=True).clip(0, None)
        highlight = highlight + np.asarray(c) * ndh ** SPEC_EXPONENT * (ndl > 0)
    colour = albedo * diffuse + light.specular * spec * highlight
    bg = cv2.resize(background(shot.background, (H, W), shot.seed), (w, h), interpolation=cv2.INTER_LINEAR)
    photo = np.where(mask[..., None], colour, bg).astype(np.float32)
    if ss > 1:
        photo = cv2.resize(photo, (W, H), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(2000 + shot.seed)
    photo = photo + rng.normal(0.0, NOISE_SIGMA, photo.shape).astype(np.float32)
    return (photo.clip(0, 1) * 255 + 0.5).astype(np.uint8), (K, R, t)


# --------------------------------------------------------------------------- landmarks and scale
def _detect(photo: np.ndarray):
    from ..detect.detect import detect_landmarks

    return detect_landmarks(photo)


def _back_project(points_cv: np.ndarray, depth: np.ndarray, K, R, t) -> np.ndarray:
    """3D surface points under 2D points (OpenCV pixel centres) from a depth map (renderer pixels)."""
    H, W = depth.shape
    out = []
    for x, y in np.asarray(points_cv, np.float64):
        fx, fy = x, y  # renderer coordinate (x + 0.5) minus the 0.5 of the pixel-centre grid
        j0, i0 = int(np.floor(fx)), int(np.floor(fy))
        wx, wy = fx - j0, fy - i0
        zs, ws = [], []
        for di, dj, wgt in ((0, 0, (1 - wx) * (1 - wy)), (0, 1, wx * (1 - wy)), (1, 0, (1 - wx) * wy), (1, 1, wx * wy)):
            i, j = min(max(i0 + di, 0), H - 1), min(max(j0 + dj, 0), W - 1)
            if depth[i, j] > 0:
                zs.append(depth[i, j])
                ws.append(wgt)
        if not zs:
            raise MfnetError("Lee scan: a detected landmark is off the rendered surface")
        z = float(np.dot(zs, ws) / max(sum(ws), 1e-12)) if sum(ws) > 1e-9 else float(np.mean(zs))
        xc = z * np.linalg.inv(K) @ np.array([x + 0.5, y + 0.5, 1.0])
        out.append(R.T @ (xc - t))
    return np.asarray(out)


def _frontal_depth(V, F, uv, tex, centre, distance, covered, size):
    """Frontal studio render of the scan (any units) whose image width covers ``covered`` units at
    ``distance``; returns (photo, depth map, (K, R, t))."""
    import torch

    from ..render import PerspectiveCameras, Renderer

    shot = Shot(0.0, 0.0, "studio", "plain", distance, size[1] * FACE_WIDTH_MM_REF / covered, size, 0)
    photo, (K, R, t) = render_shot(V, F, uv, tex, shot, centre)
    cams = PerspectiveCameras(torch.tensor(K[None]), torch.tensor(R[None]), torch.tensor(t[None]))
    with torch.no_grad():  # float64: the depth of the landmarks
        depth = Renderer(size).render(torch.tensor(V[None]), torch.as_tensor(F), cams).depth[0, 0].numpy()
    return photo, depth, (K, R, t)


def exterior_vertices(V: np.ndarray, F: np.ndarray, n_dirs: int = 64, size: int = 512,
                      tol: float = 0.004) -> np.ndarray:
    """(N,) bool: vertices seen from outside.  The mesh is rendered orthographically (depth only) from
    ``n_dirs`` directions spread evenly over the sphere (Fibonacci); a vertex is exterior when in some
    view its depth is within ``tol`` x the mesh extent of the z-buffer at its pixel (minimum over the
    3x3 neighbourhood).  The Lee scan's inner geometry (mouth bag, eye sockets) is never seen."""
    import torch

    from ..render import WeakPerspectiveCameras, rasterize

    V = np.asarray(V, np.float64)
    c = (V.min(0) + V.max(0)) / 2
    ext = float(np.ptp(V, 0).max())
    seen = np.zeros(len(V), bool)
    k = np.arange(n_dirs) + 0.5
    phi, theta = np.arccos(1 - 2 * k / n_dirs), np.pi * (1 + 5 ** 0.5) * k
    dirs = np.stack([np.sin(phi) * np.cos(theta), np.sin(phi) * np.sin(theta), np.cos(phi)], 1)
    f64 = torch.float64
    cams = WeakPerspectiveCameras(torch.tensor([2.0 / (1.05 * ext)], dtype=f64), torch.zeros(1, 2, dtype=f64))
    Ft = torch.as_tensor(F)
    for d in dirs:  # rotate d onto +z (the camera looks down -z)
        z = d / np.linalg.norm(d)
        x = np.cross([0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0], z)
        x /= np.linalg.norm(x)
        R = np.stack([x, np.cross(z, x), z])
        P = torch.tensor(((V - c) @ R.T)[None])
        with torch.no_grad():
            scr = cams.project(P, (size, size))
            zbuf = rasterize(scr, Ft, (size, size)).zbuf[0].numpy()
        zb = np.where(np.isfinite(zbuf), zbuf, np.inf)
        pad = np.pad(zb, 1, constant_values=np.inf)
        zmin = np.min([pad[i:i + size, j:j + size] for i in range(3) for j in range(3)], 0)
        s = scr[0].numpy()
        col = np.clip(s[:, 0].astype(int), 0, size - 1)
        row = np.clip(s[:, 1].astype(int), 0, size - 1)
        seen |= s[:, 2] <= zmin[row, col] + tol * ext
    return seen


def _lee_landmarks(V: np.ndarray, raw: LeeRaw) -> np.ndarray:
    """68 iBUG points (scan units) of the centred scan ``V``: detection on frontal renders, back-projected."""
    ext = float(np.ptp(V, 0).max())
    size = (1024, 1024)
    # pass 1: the upper part of the bust (0.6 of its extent across the image), in scan units
    top = np.array([0.0, V[:, 1].max() - 0.3 * np.ptp(V[:, 1]), V[:, 2].max()])
    photo, depth, cam = _frontal_depth(V, raw.faces, raw.uv, raw.texture, top, 4.0 * ext, 0.6 * ext, size)
    L = _back_project(_detect(photo).points, depth, *cam)
    # pass 2: framed on the face found in pass 1 (face width 0.6 of the image, ~600 px)
    face_w = float(np.linalg.norm(L[16] - L[0]))
    photo, depth, cam = _frontal_depth(V, raw.faces, raw.uv, raw.texture, L[17:68].mean(0), 6.0 * face_w,
                                       face_w / 0.6, size)
    return _back_project(_detect(photo).points, depth, *cam)


@lru_cache(maxsize=2)
def load_lee(root=None) -> Scan:
    """The Lee Perry-Smith scan in mm with 68 landmarks back-projected from detections (see module doc)."""
    from .synthetic import PUPIL_MM, pupil_distance

    raw = load_lee_raw(root)
    V = raw.vertices - raw.vertices.mean(0)
    glb = lee_dir(root) / "LeePerrySmith.glb"
    cached = cache_dir() / f"lee-landmarks-{cache_key(str(glb), glb.stat().st_size)}.npz"
    if cached.exists():
        with np.load(cached) as z:
            L, exterior = z["landmarks"], z["exterior"]
    else:
        from ..utils.io import atomic_path

        L = _lee_landmarks(V, raw)
        exterior = exterior_vertices(V, raw.faces)
        with atomic_path(cached) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, landmarks=L, exterior=exterior)
    s = PUPIL_MM / pupil_distance(L)
    origin = L[33].copy()
    V, L = (V - origin) * s, (L - origin) * s
    face_frame(L)  # handedness check
    note = (f"Lee Perry-Smith, scaled x{s:.3f} to a {PUPIL_MM} mm eye-centre distance; landmarks back-projected "
            "from MediaPipe on a frontal render")
    return Scan("lee", V, raw.faces, L, note=note,
                extra={"uv": raw.uv, "texture": raw.texture, "scale": s}, exterior=exterior)


# --------------------------------------------------------------------------- views of a case
def pose_scan(scan: Scan, yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, landmarks) mm of the scan turned by yaw/pitch about its pivot (face frame axes)."""
    o, Rf = face_frame(scan.landmarks)
    pivot = o - PIVOT_BEHIND_MM * Rf[2]
    R = _rot(yaw, pitch)
    return (scan.vertices - pivot) @ R.T + pivot, (scan.landmarks - pivot) @ R.T + pivot


def render_case(case: str, scan: Scan | None = None, root=None) -> list[tuple[np.ndarray, tuple]]:
    """[(photo uint8, (K, R, t)), ...] of a Lee case (see :data:`LEE_CASES`)."""
    if case not in LEE_CASES:
        raise MfnetError(f"unknown Lee case {case!r}: choose from {', '.join(LEE_CASES)}")
    scan = scan or load_lee(root)
    out = []
    for shot in LEE_CASES[case].shots:
        V, L = pose_scan(scan, shot.yaw, shot.pitch)
        centre = L[17:68].mean(0)
        out.append(render_shot(V, scan.faces, scan.extra["uv"], scan.extra["texture"], shot, centre))
    return out
