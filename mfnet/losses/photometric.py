"""Multi-view photometric consistency (optional; beyond the paper's eq. 11).

A surface point X seen in two photos has one albedo. With Lambertian SH shading (eq. 2) the colour
photo v records at X's projection is ``albedo(X) * sh_v(n_v(X))``, so for every co-visible point

    log I_a(π_a(X)) - log sh_a(n_a(X))  =  log I_b(π_b(X)) - log sh_b(n_b(X)).

The loss is the robust (Charbonnier) mean of the difference over points sampled where the current
head is the nearest surface in both views (z-buffer test), with gradients through both projections
(bilinear image gradients), the normals and the per-view SH lights. A common scale of all lights
cancels, so exposure needs no extra parameter. Unlike the optical-flow term it needs no rendering
per step: the sample points are refreshed every few steps, the photos are sampled directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

from ..render.rasterize import rasterize
from ..render.shading import sh_shading
from ..render.visibility import covisible_pairs
from ..utils.sparse import FixedSparse


@dataclass
class SurfaceSamples:
    """Surface points co-visible in an ordered view pair: point k lies on ``face_idx[k]`` at ``bary[k]``."""

    view_a: torch.Tensor  # (K,) long
    view_b: torch.Tensor  # (K,) long
    face_idx: torch.Tensor  # (K,) long
    bary: torch.Tensor  # (K, 3)

    def __len__(self) -> int:
        return int(self.face_idx.shape[0])


@torch.no_grad()
def covisible_samples(verts: torch.Tensor, faces: torch.Tensor, cameras, size: int,
                      face_mask: torch.Tensor | None = None, max_points_per_pair: int = 3000,
                      depth_tol: float = 3e-3, generator: torch.Generator | None = None) -> SurfaceSamples:
    """Points hit by the pixels of each view b that are also the nearest surface in each other view a.

    verts (N, V, 3) posed per view; face_mask (F,) bool restricts the faces (e.g. the face region
    without the lips); depth_tol in model units."""
    N, dev = verts.shape[0], verts.device
    sv = cameras.project(verts, (size, size))
    frags = rasterize(sv, faces, (size, size), perspective_correct=cameras.perspective_correct)
    p2f = frags.pix_to_face
    covered = [p2f[b] >= 0 if face_mask is None else (p2f[b] >= 0) & face_mask[p2f[b].clamp_min(0)] for b in range(N)]
    out = {k: [] for k in ("a", "b", "f", "w")}
    for p in covisible_pairs(sv, frags, faces, size, covered, depth_tol, max_points_per_pair, generator):
        out["a"].append(torch.full((p.keep.numel(),), p.a, dtype=torch.long, device=dev))
        out["b"].append(torch.full((p.keep.numel(),), p.b, dtype=torch.long, device=dev))
        out["f"].append(p.f[p.keep])
        out["w"].append(p.w[p.keep])
    if not out["f"]:
        z = torch.zeros(0, dtype=torch.long, device=dev)
        return SurfaceSamples(z, z, z, verts.new_zeros(0, 3))
    return SurfaceSamples(*(torch.cat(out[k]) for k in ("a", "b", "f", "w")))


def log_images(images: torch.Tensor, blur_sigma: float = 0.0, floor: float = 0.02) -> torch.Tensor:
    """log of (optionally Gaussian-blurred, sigma in pixels) images (N, C, H, W), clamped at ``floor``."""
    if blur_sigma > 0:
        r = max(1, int(3 * blur_sigma + 0.5))
        images = gaussian_blur(images, [2 * r + 1] * 2, [blur_sigma] * 2)
    return images.clamp_min(floor).log()


@dataclass
class PhotoPlan:
    """The per-step lookups of :func:`photometric_consistency_loss` for fixed samples, prepared once.

    Each sample is looked up twice (in view a and in view b); the 2K lookups are sorted by view so
    that each photo is sampled on one contiguous slice. ``lookup`` interpolates per-vertex features
    (pixel position, normal, camera direction) of all views at the lookups, ``diff`` subtracts the
    view-b value from the view-a value of each sample; both are fixed sparse maps
    (:class:`mfnet.utils.sparse.FixedSparse`)."""

    lookup: FixedSparse  # (2K, N*V)
    diff: FixedSparse  # (K, 2K)
    ranges: list[tuple[int, int, int]]  # (view, start, end) of the sorted lookups
    pos_a: torch.Tensor  # (K,) sorted position of each sample's view-a lookup
    pos_b: torch.Tensor  # (K,)

    @classmethod
    def build(cls, samples: SurfaceSamples, faces: torch.Tensor, num_views: int, num_vertices: int,
              dtype: torch.dtype = torch.float32) -> "PhotoPlan":
        K, dev = len(samples), faces.device
        view = torch.cat([samples.view_a, samples.view_b]).to(dev)
        order = torch.sort(view, stable=True).indices
        pos = torch.empty_like(order)
        pos[order] = torch.arange(2 * K, device=dev)
        tri = faces[samples.face_idx.to(dev)].repeat(2, 1)[order]  # (2K, 3) vertex ids, sorted lookups
        bary = samples.bary.to(dev, dtype).repeat(2, 1)[order]
        vs = view[order]
        rows = torch.arange(2 * K, device=dev)[:, None].expand(-1, 3)
        lookup = FixedSparse(rows, vs[:, None] * num_vertices + tri, bary, (2 * K, num_views * num_vertices))
        k = torch.arange(K, device=dev)
        one = torch.ones(K, dtype=dtype, device=dev)
        diff = FixedSparse(torch.cat([k, k]), torch.cat([pos[:K], pos[K:]]), torch.cat([one, -one]), (K, 2 * K))
        counts = torch.bincount(vs, minlength=num_views).tolist()
        starts = [0, *accumulate(counts)]
        ranges = [(v, starts[v], starts[v + 1]) for v in range(num_views) if counts[v]]
        return cls(lookup, diff, ranges, pos[:K], pos[K:])


def _log_albedo(pts: torch.Tensor, normals: torch.Tensor, logs: torch.Tensor, sh_coeffs: torch.Tensor,
                ranges, size: int, min_shading: float) -> torch.Tensor:
    """(L, C) log photo colour minus log shading of lookups (L, 2 pixels) with unit normals (L, 3),
    sorted by view: ``ranges`` (view, start, end)."""
    out = []
    for v, s, e in ranges:  # one bilinear lookup per photo
        grid = (pts[s:e] / size * 2 - 1)[None, :, None, :].to(logs.dtype)
        colour = F.grid_sample(logs[v:v + 1], grid, align_corners=False, padding_mode="border")[0, :, :, 0].T
        shade = sh_shading(normals[s:e][None], sh_coeffs[v:v + 1])[0].clamp_min(min_shading)
        out.append(colour - shade.log())
    return torch.cat(out)


def charbonnier(d: torch.Tensor, eps: float) -> torch.Tensor:
    """The robust penalty of the residuals ``d``: ``sqrt(d^2 + eps^2) - eps`` (quadratic below eps, then linear)."""
    return torch.sqrt(d ** 2 + eps ** 2) - eps


def photometric_consistency_loss(verts: torch.Tensor, normals: torch.Tensor, faces: torch.Tensor, cameras,
                                 size: int, logs: torch.Tensor, sh_coeffs: torch.Tensor, samples: SurfaceSamples,
                                 eps: float = 0.02, min_shading: float = 0.05, min_cos: float = 0.0,
                                 plan: PhotoPlan | None = None, normalise: bool = False,
                                 eps_normalised: float = 0.1) -> torch.Tensor:
    """Charbonnier mean of the log-albedo difference between the two views of each sample.

    verts, normals (N, V, 3) per view (normals: unit vertex normals of the posed heads); faces
    (F, 3) indexed by ``samples.face_idx``; logs (N, C, S, S) from :func:`log_images`;
    sh_coeffs (N, 9, C). ``min_cos > 0``: a weighted mean instead, each point weighted by
    ``clamp((min(cos_a, cos_b) - min_cos) / 0.2, 0, 1)`` with cos_v = |normal · direction to camera v|:
    where a view sees the surface at a grazing angle a small geometry error moves the point far in
    that photo, so those points count less. ``plan``: :meth:`PhotoPlan.build` of these samples, for
    callers that evaluate the same samples many times (built here when not given).

    ``normalise``: compare *standardised* log albedos. Per ordered view pair and channel, each view's
    samples are centred and divided by their own (weighted) standard deviation before the difference
    (Charbonnier with ``eps_normalised``). The plain difference has a degenerate direction: it falls
    whenever the samples move, in both photos together, into flat skin (shrinking the projected head),
    because flat regions differ little whether aligned or not. Standardised, a flat region's samples
    are noise and disagree (``mean (z_a - z_b)^2 = 2 (1 - r)``, r the correlation of the two views'
    samples), so only aligning the pattern lowers the term. It is also invariant to each photo's
    exposure and contrast.
    """
    if len(samples) == 0:
        return verts.sum() * 0
    N, V = verts.shape[:2]
    if plan is None:
        plan = PhotoPlan.build(samples, faces, N, V, verts.dtype)
    feats = [cameras.project(verts, (size, size))[..., :2], normals]
    if min_cos > 0:
        feats.append(cameras.view_dirs(verts).detach())  # towards each camera
    at = plan.lookup(torch.cat(feats, -1).reshape(N * V, -1))  # (2K, 5 or 8), sorted by view
    n = at[:, 2:5] / torch.linalg.vector_norm(at[:, 2:5], dim=-1, keepdim=True).clamp_min(1e-12)
    albedo = _log_albedo(at[:, :2], n, logs, sh_coeffs, plan.ranges, size, min_shading)  # (2K, C)
    wt = None
    if min_cos > 0:  # points seen at a grazing angle in either view: a small geometry error moves them far
        cos = (n.detach() * at[:, 5:8].detach()).sum(-1).abs()
        wt = ((torch.minimum(cos[plan.pos_a], cos[plan.pos_b]) - min_cos) / 0.2).clamp(0, 1)[:, None]
    if normalise:
        d = _standardised_difference(albedo, plan, samples, N, wt)
        eps = eps_normalised
    else:
        d = plan.diff(albedo)
    rho = charbonnier(d, eps)
    if wt is None:
        return rho.mean()
    return (rho * wt).sum() / (wt.sum() * rho.shape[1]).clamp_min(1e-12)


def _standardised_difference(albedo: torch.Tensor, plan: PhotoPlan, samples: SurfaceSamples, num_views: int,
                             weights: torch.Tensor | None, floor: float = 1e-3) -> torch.Tensor:
    """(K, C) ``z_a - z_b``: each ordered pair's view-a and view-b samples standardised separately
    (weighted mean and standard deviation over the pair's samples, per channel)."""
    K, dev = len(samples), albedo.device
    pair = (samples.view_a * num_views + samples.view_b).to(dev)  # (K,)
    w = albedo.new_ones(K, 1) if weights is None else weights
    wsum = albedo.new_zeros(num_views * num_views, 1).index_add(0, pair, w).clamp_min(1e-12)

    def z(x):  # (K, C) -> standardised per pair
        mean = albedo.new_zeros(num_views * num_views, x.shape[1]).index_add(0, pair, w * x) / wsum
        c = x - mean[pair]
        var = albedo.new_zeros(num_views * num_views, x.shape[1]).index_add(0, pair, w * c * c) / wsum
        return c / torch.sqrt(var + floor ** 2)[pair]

    return z(albedo[plan.pos_a]) - z(albedo[plan.pos_b])
