"""Convert the open ICT-FaceKit (MIT, USC ICT) into an mfnet :class:`HeadModelData`.

Sources (:func:`locate_ict`): the *repacked* folder (``ict_facekit_vertices.npz`` +
``generic_neutral_mesh.obj`` + ``vertex_indices.json``) or the original kit's
``FaceXModel/`` (``generic_neutral_mesh.obj``, ``identity000.obj`` ..., one OBJ per
expression, ``vertex_indices.json``); a kit with only the first few identity/expression
OBJs converts when ``n_shape``/``n_expr`` ask for no more than it holds.

Conversion (metres, y up, face towards +z; the kit is in cm):

* faces: polygons of the kept regions (README index ranges), fan-triangulated with
  their winding (checked: the face region faces +z); vertices compacted to those used;
* bases: the first ``n_shape`` identity modes (unit std) and the expression deltas
  (ARKit-style activations in [0, 1], *not* N(0, 1) coefficients);
* joints (global, neck, jaw, eye_left, eye_right) are convex vertex combinations
  computed on the full mesh: global = centroid of the neck's bottom boundary ring,
  jaw = midpoint of skin patches (1.5 cm) around landmarks 1/15 in front of the ears,
  neck = midway global-jaw, eyes = sphere-fit sclera centres written over eyeball
  vertices (the plain centroid sits ~4 mm too far forward).  A joint that uses dropped
  vertices is re-expressed over the nearest kept vertices (closest-to-uniform weights,
  else NNLS, widening the neighbourhood until it reproduces the joint; any residual
  is in ``meta['joints_refit_on_kept_vertices']`` in mm), so rows stay >= 0, sum to 1
  and follow the shape;
* skinning: the jaw weight is a product of two sigmoids of geodesic distance
  differences (to seeds on the lower lip/chin/jaw contour vs. the upper face and upper
  lip, and vs. the lower neck), so the lips part at the mouth slit while cheeks and
  mouth floor blend over a few cm; a smoothstep along the neck hands the weight from
  the head (neck joint) to the global joint at the bottom ring; eyeballs follow the
  eye joints, lower teeth the jaw, gums/tongue the nearer tooth row;
* landmarks: the 68 iBUG vertices (``idx_to_landmark_verts``) as one-hot barycentrics;
* UVs: each kept material's [k, k+1) u-tile packed into one [0, 1]² atlas
  (``meta['uv_atlas']``); masks: regions plus landmark-based nose/lips/eyes/neck.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.optimize import nnls
from scipy.special import expit
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from tqdm import tqdm

from .data import FLAME_PARENTS, JOINT_NAMES, HeadModelData, HeadModelError
from .objio import ObjMesh, read_obj, read_obj_vertices

ICT_URL = "https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip"
DEFAULT_URL = ICT_URL  # what `mfnet models fetch ict-facekit` downloads without --from
NPZ_NAME = "ict_facekit_vertices.npz"
MESH_NAME = "generic_neutral_mesh.obj"
INDEX_NAME = "vertex_indices.json"
NUM_VERTICES, NUM_POLYGONS = 26719, 26384
CM = 0.01  # kit units -> metres

from .ict_regions import DEFAULT_REGIONS, REGIONS  # noqa: E402  (light constants, also used by the CLI)
NARROW_FACE_LAST = 6705                                # README "Narrow face area" [0:6705]
EYEBALL = {"left": (21451, 23020), "right": (23021, 24590)}   # left = subject's left = +x
SCLERA = {"left": (21451, 22220), "right": (23021, 23790)}
UPPER_TEETH, LOWER_TEETH = (17039, 19246), (19247, 21450)  # README teeth #0-15, #16-31
TAU_LIPS, TAU_NECK = 0.005, 0.012   # jaw blend widths (m) towards the head / the neck


# ----------------------------------------------------------------------------- sources
def locate_ict(src: str | Path) -> tuple[str, Path]:
    """Find the kit in ``src``: ``("npz", folder)`` for the repacked form or ``("kit", folder)``
    for the original ``FaceXModel`` OBJs (``src`` may be the folder, its parent or the repo root).
    """
    p = Path(src).expanduser()
    if p.is_dir():
        for cand in (p, p / "FaceXModel", *sorted(p.glob("*/FaceXModel"))):
            if (cand / MESH_NAME).is_file() and (cand / INDEX_NAME).is_file():
                if (cand / NPZ_NAME).is_file():
                    return "npz", cand
                if (cand / "identity000.obj").is_file():
                    return "kit", cand
    raise HeadModelError(
        f"{p}: no ICT-FaceKit found. Expected either a folder with {NPZ_NAME}, {MESH_NAME} and "
        f"{INDEX_NAME} (repacked), or the kit's FaceXModel/ folder (or a folder containing it) with "
        f"{MESH_NAME}, identity000.obj ..., the expression OBJs and {INDEX_NAME}. Get the kit with "
        f"`git clone https://github.com/ICT-VGL/ICT-FaceKit` or `mfnet models fetch ict-facekit`.")


def _load_deltas(kind: str, root: Path, neutral_obj: np.ndarray, keep: np.ndarray,
                 n_shape: int, n_expr: int | None):
    """Neutral (all vertices), identity and expression deltas (kept vertices) and the
    expression names, all in cm.  OBJ expressions are taken in file-name order."""
    if kind == "npz":
        with np.load(root / NPZ_NAME) as z:
            ident, expr, neutral = z["identity_deltas"], z["expression_deltas"], z["neutral"]
            names = [str(s) for s in z["expression_names"]]
    else:
        objs = {f.stem: f for f in root.glob("*.obj")}
        is_id = [s for s in objs if re.fullmatch(r"identity\d+", s)]
        ident = sorted(is_id, key=lambda s: int(s[8:]))
        names = sorted(set(objs) - set(is_id) - {Path(MESH_NAME).stem})
    n_expr = len(names) if n_expr is None else n_expr
    for what, want, have in (("identity modes", n_shape, len(ident)), ("expressions", n_expr, len(names))):
        if not 0 <= want <= have:
            raise HeadModelError(f"{root}: asked for {want} {what} but the kit has {have}")
    if kind == "npz":
        return (neutral.astype(np.float64), ident[:n_shape][:, keep].astype(np.float64),
                expr[:n_expr][:, keep].astype(np.float64), names[:n_expr])
    files = [objs[s] for s in ident[:n_shape] + names[:n_expr]]
    deltas = np.empty((len(files), keep.size, 3))
    for i, f in enumerate(tqdm(files, desc="ICT-FaceKit OBJs", unit="obj", disable=None)):
        v = read_obj_vertices(f)
        if v.shape != neutral_obj.shape:
            raise HeadModelError(f"{f}: {len(v)} vertices, expected {len(neutral_obj)}")
        deltas[i] = v[keep] - neutral_obj[keep]
    return neutral_obj, deltas[:n_shape], deltas[n_shape:], names[:n_expr]


# ----------------------------------------------------------------------------- geometry helpers
def _in_ranges(idx: np.ndarray, ranges) -> np.ndarray:
    out = np.zeros(idx.shape, bool)
    for a, b in ranges:
        out |= (idx >= a) & (idx <= b)
    return out


def _convex_weights(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights >= 0 summing to 1 with ``w @ points == target`` (if inside the hull), as close to
    uniform as possible; non-negative least squares when the closest-to-uniform solution is not."""
    k = len(points)
    A, u = np.vstack([points.T, np.ones(k)]), np.full(k, 1.0 / k)
    w = u + A.T @ np.linalg.lstsq(A @ A.T, np.append(target, 1.0) - A @ u, rcond=None)[0]
    if w.min() < 0:
        scale = 1.0 / max(np.abs(points - target).max(), 1e-9)
        w = nnls(np.vstack([(points - target).T * scale, 10.0 * np.ones(k)]),
                 np.append(np.zeros(3), 10.0))[0]
    return w / w.sum()


def _edges(tri: np.ndarray) -> np.ndarray:
    return np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)


def _bottom_ring(tri: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Vertices of the lowest boundary loop (mean y) of a triangle mesh."""
    e, count = np.unique(_edges(tri), axis=0, return_counts=True)
    b, n = e[count == 1], len(P)
    lab = connected_components(sparse.coo_matrix((np.ones(len(b)), b.T), (n, n)), directed=False)[1]
    bv = np.unique(b)
    return min((bv[lab[bv] == c] for c in np.unique(lab[bv])), key=lambda vs: P[vs, 1].mean())


def _sphere_centre(S: np.ndarray) -> np.ndarray:
    A = np.c_[2 * S, np.ones(len(S))]
    return np.linalg.lstsq(A, (S ** 2).sum(1), rcond=None)[0][:3]


def _joint_rows(P: np.ndarray, skin_tri: np.ndarray, lmk: np.ndarray) -> np.ndarray:
    """Full-mesh joint regressor (5, NUM_VERTICES) on the neutral ``P`` (m)."""
    n = len(P)
    ring = _bottom_ring(skin_tri, P)
    skin = np.unique(skin_tri)
    tree = cKDTree(P[skin])
    hinge = [skin[tree.query_ball_point(P[lmk[i]], 0.015)] for i in (1, 15)]
    J = np.zeros((5, n))
    J[0, ring] = 1.0 / len(ring)
    for h in hinge:
        J[2, h] += 0.5 / len(h)
    J[1] = 0.5 * (J[0] + J[2])
    for j, side in ((3, "left"), (4, "right")):
        a, b = EYEBALL[side]
        centre = _sphere_centre(P[SCLERA[side][0]:SCLERA[side][1] + 1])
        J[j, a:b + 1] = _convex_weights(P[a:b + 1], centre)
    return J


def _restrict_joints(J_full: np.ndarray, P: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, dict]:
    """Express each joint over kept vertices only (see module doc); returns the regressor and,
    per re-expressed joint, the distance (mm) between its new and its full-mesh position."""
    remap = np.full(len(P), -1)
    remap[keep] = np.arange(keep.size)
    J = np.zeros((len(J_full), keep.size))
    refit = {}
    tree, Pk = cKDTree(P[keep]), P[keep]
    for j, row in enumerate(J_full):
        support = np.nonzero(row)[0]
        if (remap[support] >= 0).all():
            J[j, remap[support]] = row[support]
            continue
        target, best = row @ P, None
        for k in (64, 256, 1024, 4096, keep.size):   # widen until the target is inside the hull
            near = tree.query(target, k=min(k, keep.size))[1]
            w = _convex_weights(Pk[near], target)
            err = float(np.linalg.norm(w @ Pk[near] - target))
            if best is None or err < best[0]:
                best = (err, near, w)
            if err < 1e-5 or k >= keep.size:
                break
        J[j, best[1]] = best[2]
        refit[JOINT_NAMES[j]] = round(best[0] * 1000, 3)
    return J, refit


def _skinning(P_full: np.ndarray, keep: np.ndarray, faces: np.ndarray, joints: np.ndarray,
              lmk: np.ndarray) -> np.ndarray:
    """Skinning weights (V_kept, 5); ``faces``/``joints``/``lmk`` refer to the kept vertices."""
    P, V = P_full[keep], len(keep)
    e = np.unique(_edges(faces), axis=0)
    G = sparse.coo_matrix((np.linalg.norm(P[e[:, 0]] - P[e[:, 1]], axis=1), (e[:, 0], e[:, 1])), (V, V))
    y = P[:, 1]
    skin = _in_ranges(keep, [REGIONS["face"][0][:2], REGIONS["head_neck"][0][:2]])
    seeds = [  # head: skin above the nose base + upper lip; jaw: lower lip, chin, jaw contour;
        # lower neck: skin 4 cm below the chin
        np.union1d(lmk[np.r_[49:54, 61:64]], np.nonzero(skin & (y > P[lmk[33], 1]))[0]),
        lmk[np.r_[4:13, 55:60, 65:68]],
        np.nonzero(skin & (y < P[lmk[8], 1] - 0.04))[0],
    ]
    d = np.stack([dijkstra(G, directed=False, indices=s, min_only=True) for s in seeds], 1)
    lost = ~np.isfinite(d).any(1)                      # components without seeds: Euclidean
    if lost.any():
        d[lost] = np.stack([cKDTree(P[s]).query(P[lost])[0] for s in seeds], 1)
    with np.errstate(invalid="ignore"):
        jaw = np.nan_to_num(expit((d[:, 0] - d[:, 1]) / TAU_LIPS) * expit((d[:, 2] - d[:, 1]) / TAU_NECK))
    # teeth by the README's upper/lower rows; gums and tongue by the nearer tooth row
    jaw[_in_ranges(keep, [UPPER_TEETH])], jaw[_in_ranges(keep, [LOWER_TEETH])] = 0.0, 1.0
    gums = _in_ranges(keep, [REGIONS["gums_tongue"][0][:2]])
    if gums.any():
        du, dl = (cKDTree(P_full[a:b + 1]).query(P[gums])[0] for a, b in (UPPER_TEETH, LOWER_TEETH))
        jaw[gums] = expit((du - dl) / TAU_LIPS)
    axis = joints[1] - joints[0]
    t = np.clip((P - joints[0]) @ axis / (axis @ axis), 0, 1)   # 0 at the ring, 1 at the neck joint
    head = t * t * (3 - 2 * t)                                    # smoothstep
    W = np.stack([1 - head, head * (1 - jaw), head * jaw, 0 * jaw, 0 * jaw], 1)
    for j, side in ((3, "left"), (4, "right")):
        W[_in_ranges(keep, [EYEBALL[side]])] = np.eye(5)[j]
    return W / W.sum(1, keepdims=True)


# ----------------------------------------------------------------------------- UVs, masks
def _atlas_cells(n: int) -> list[tuple[float, float, float]]:
    """(u0, v0, size) square cells in [0, 1]²: first two materials share the top half,
    the others fill the bottom half in a grid (2r x r cells)."""
    if n == 1:
        return [(0.0, 0.0, 1.0)]
    cells = [(0.0, 0.5, 0.5), (0.5, 0.5, 0.5)]
    m = n - 2
    r = int(np.ceil(np.sqrt(m / 2))) if m else 1
    s = 0.5 / r
    cells += [((i % (2 * r)) * s, 0.5 - (i // (2 * r) + 1) * s, s) for i in range(m)]
    return cells


def _uv_atlas(mesh: ObjMesh, tri_vt: np.ndarray, tri_poly: np.ndarray):
    """Pack the per-material u-tiles of the kept faces into one atlas: (vt, ft, layout)."""
    if (tri_vt < 0).any():
        return None, None, None
    mat = mesh.poly_material[tri_poly]
    mats = np.unique(mat)
    n_mat = len(mesh.materials) + 1                       # material -1: faces before any usemtl
    uniq, ft = np.unique(tri_vt.ravel() * n_mat + np.repeat(mat + 1, 3), return_inverse=True)
    src_vt, src_mat = uniq // n_mat, uniq % n_mat - 1
    uv = mesh.uvs[src_vt]
    vt = np.zeros_like(uv)
    layout = {}
    for m, (u0, v0, s) in zip(mats, _atlas_cells(len(mats))):
        sel = src_mat == m
        tile = float(np.floor(uv[sel, 0].mean()))
        vt[sel] = np.c_[u0 + s * (uv[sel, 0] - tile), v0 + s * uv[sel, 1]]
        name = mesh.materials[m] if m >= 0 else "none"
        layout[name] = {"source_u_tile": tile, "offset": [u0, v0], "scale": s}
    return vt.astype(np.float32), ft.reshape(-1, 3), layout


def _inside(xy: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of points ``xy`` (N, 2) against a closed polygon (K, 2)."""
    a, b = poly, np.roll(poly, -1, axis=0)
    x, y = xy[:, :1], xy[:, 1:]
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    xint = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / np.where(b[:, 1] == a[:, 1], 1, b[:, 1] - a[:, 1])
    return (crosses & (x < xint)).sum(1) % 2 == 1


def _masks(P: np.ndarray, keep: np.ndarray, lmk: np.ndarray, regions) -> dict[str, np.ndarray]:
    """Named vertex masks (kept indices); nose, lips and eye areas are approximated from landmarks."""
    def rng(*names):
        return np.nonzero(_in_ranges(keep, [r[:2] for n in names for r in REGIONS[n]]))[0]

    def near(ids, radius):          # face vertices within radius of a landmark polyline
        pts = P[lmk[ids]]
        dense = (pts[:-1, None] + np.linspace(0, 1, 8)[:, None] * (pts[1:] - pts[:-1])[:, None]).reshape(-1, 3)
        return face[np.unique(np.concatenate(cKDTree(P[face]).query_ball_point(dense, radius)))]

    def enclosed(pts):              # face vertices inside a landmark polygon seen from the front
        return face[_inside(P[face, :2], pts[:, :2]) & (P[face, 2] > pts[:, 2].min() - 0.015)]

    face, wing = rng("face"), np.array([0.006, 0, 0])
    skin = np.union1d(face, rng("head_neck"))
    nose = np.vstack([P[lmk[27]], P[lmk[31]] - wing, P[lmk[31:36]], P[lmk[35]] + wing])
    masks = {"face": face, "narrow_face": face[keep[face] <= NARROW_FACE_LAST], "nose": enclosed(nose),
             "lips": np.union1d(near(np.r_[48:60, 48], 0.002), enclosed(P[lmk[48:60]])),
             "neck": skin[P[skin, 1] < P[lmk[8], 1] - 0.01],
             "eye_right": near(np.r_[36:42, 36], 0.012), "eye_left": near(np.r_[42:48, 42], 0.012)}
    masks["eyes"] = np.unique(np.concatenate([masks["eye_left"], masks["eye_right"],
                                              rng(*[k for k in ("eye_sockets", "eyeballs") if k in regions])]))
    if "head_neck" in regions:
        masks["head_neck"] = hn = rng("head_neck")
        masks["scalp"] = hn[P[hn, 1] > P[lmk[17:27], 1].min()]
    if "eyeballs" in regions:
        masks["eyeballs"] = rng("eyeballs")
    inner = [k for k in ("mouth_socket", "gums_tongue", "teeth") if k in regions]
    if inner:
        masks["mouth_interior"] = rng(*inner)
    return {k: np.asarray(v, np.int64) for k, v in masks.items()}


# ----------------------------------------------------------------------------- conversion
def convert_ict(src: str | Path, *, regions=DEFAULT_REGIONS, n_shape: int = 100,
                n_expr: int | None = None, name: str = "ict-facekit") -> HeadModelData:
    """Convert an ICT-FaceKit folder (repacked npz or original OBJs) into a HeadModelData.

    ``regions``: names of :data:`REGIONS` to keep ('face' is required: it holds the
    landmarks); ``n_shape``: identity modes (<= 100); ``n_expr``: expressions (None: all,
    57 in the full kit, in file-name order).  Raises HeadModelError on a bad source.
    """
    regions = tuple(dict.fromkeys([regions] if isinstance(regions, str) else regions))
    unknown = [r for r in regions if r not in REGIONS]
    if unknown or "face" not in regions:
        raise HeadModelError(f"ICT regions must include 'face' and be among {list(REGIONS)}; got {list(regions)}")
    kind, root = locate_ict(src)
    mesh = read_obj(root / MESH_NAME)
    if len(mesh.vertices) != NUM_VERTICES or mesh.num_polygons != NUM_POLYGONS:
        raise HeadModelError(f"{root / MESH_NAME}: {len(mesh.vertices)} vertices / {mesh.num_polygons} "
                             f"polygons, expected the ICT-FaceKit topology ({NUM_VERTICES} / {NUM_POLYGONS})")
    lmk_full = np.asarray(json.loads((root / INDEX_NAME).read_text())["idx_to_landmark_verts"], np.int64)

    polys = np.concatenate([np.arange(f0, f1 + 1) for r in regions for _, _, f0, f1 in REGIONS[r]])
    tri_full, tri_vt, tri_poly = mesh.triangulate(np.sort(polys))
    keep = np.unique(tri_full)
    remap = np.full(NUM_VERTICES, -1)
    remap[keep] = np.arange(keep.size)
    faces = remap[tri_full]

    neutral, ident, expr, expr_names = _load_deltas(kind, root, mesh.vertices, keep, n_shape, n_expr)
    P_full = neutral * CM
    P = P_full[keep]
    # orientation: the face region must face +z (counter-clockwise seen from outside)
    in_face = tri_poly <= REGIONS["face"][0][3]
    tri = P[faces[in_face]]
    if np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])[:, 2].sum() < 0:
        faces, tri_vt = faces[:, ::-1].copy(), tri_vt[:, ::-1].copy()

    skin_polys = np.arange(REGIONS["face"][0][2], REGIONS["head_neck"][0][3] + 1)
    J_full = _joint_rows(P_full, mesh.triangulate(skin_polys)[0], lmk_full)
    J_reg, refit = _restrict_joints(J_full, P_full, keep)
    joints = J_reg @ P
    lmk = remap[lmk_full]
    weights = _skinning(P_full, keep, faces, joints, lmk)

    rows = np.array([np.nonzero((faces == k).any(1))[0][0] for k in lmk])
    bary = (faces[rows] == lmk[:, None]).astype(np.float32)
    vt, ft, atlas = _uv_atlas(mesh, tri_vt, tri_poly)

    meta = {
        "name": name, "source": "ICT-FaceKit", "source_url": "https://github.com/ICT-VGL/ICT-FaceKit",
        "source_format": "repacked npz" if kind == "npz" else "FaceXModel OBJs",
        "license": "MIT", "units": "m", "up": "+y", "forward": "+z", "regions": list(regions),
        "counts": {"vertices": int(keep.size), "faces": int(len(faces)), "polygons": int(polys.size),
                   "source_vertices": NUM_VERTICES, "source_polygons": NUM_POLYGONS},
        "shape_coefficients": "N(0, 1): the kit's identity modes are scaled by their std",
        "expression_names": expr_names,
        "expression_coefficients": "ICT/ARKit blendshape activations in [0, 1] (not FLAME-style N(0, 1) PCA)",
        "joint_names": list(JOINT_NAMES), "joints_refit_on_kept_vertices": refit,
        "landmark_vertices": lmk.tolist(), "uv_atlas": atlas, "posedirs": "none in the kit",
    }
    data = HeadModelData(
        v_template=P.astype(np.float32), faces=faces.astype(np.int64),
        shapedirs=(ident * CM).transpose(1, 2, 0).astype(np.float32),
        exprdirs=(expr * CM).transpose(1, 2, 0).astype(np.float32),
        J_regressor=J_reg.astype(np.float32), weights=weights.astype(np.float32),
        parents=FLAME_PARENTS.copy(), lmk_faces_idx=rows.astype(np.int64), lmk_bary_coords=bary,
        vt=vt, ft=ft, masks=_masks(P, keep, lmk, regions), meta=meta)
    return data.validate(f"ICT-FaceKit ({root})")
