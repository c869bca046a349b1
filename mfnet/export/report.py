"""``report.html``: a self-contained, offline summary page of one reconstruction.

No external scripts, styles or fonts: images are embedded as base64, loss curves are inline SVG
polylines and the 3D view is a small hand-written ``<canvas>`` software renderer (orthographic,
flat shading, painter's-algorithm face sorting; drag to rotate, wheel to zoom, double-click to
reset) reading the mesh from an embedded JSON block.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import cv2
import numpy as np

from ..utils.io import atomic_path

__all__ = ["write_report", "build_report", "loss_curve_svg", "viewer_mesh"]

MAX_FACES = 200_000  # the whole mesh of every supported head model (ICT 30k, FLAME 10k faces)

CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;
max-width:1200px}h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:.92em}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.warn{color:#a05000}
.grid{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:.85em;color:#555}
.ov img{max-width:380px;max-height:380px;border:1px solid #ccc}canvas{background:#20242a;border-radius:4px;
cursor:grab;touch-action:none}svg{background:#fafafa;border:1px solid #e4e4e4}code{font-size:.9em}"""

VIEWER_JS = r"""(function(){
var M=JSON.parse(document.getElementById('mesh-data').textContent);
var V=M.v,F=M.f,C=M.c,nv=V.length/3,nf=F.length/3;
var cv=document.getElementById('viewer'),ctx=cv.getContext('2d');
var yaw=0.35,pitch=0.1,zoom=1,tex=!!C,drag=null,pending=false;
var R=new Float64Array(nv*3),D=new Float64Array(nf),O=new Uint32Array(nf);
var L=[0.3,0.35,0.89];
var box=document.getElementById('viewer-tex');
if(box){box.checked=tex;box.disabled=!C;box.onchange=function(){tex=box.checked;req();};}
function draw(){
 pending=false;var w=cv.width,h=cv.height,s=0.45*Math.min(w,h)*zoom;
 var cy=Math.cos(yaw),sy=Math.sin(yaw),cp=Math.cos(pitch),sp=Math.sin(pitch),i,k;
 ctx.fillStyle='#20242a';ctx.fillRect(0,0,w,h);
 for(i=0;i<nv;i++){var x=V[3*i],y=V[3*i+1],z=V[3*i+2];
  var x1=cy*x+sy*z,z1=-sy*x+cy*z;R[3*i]=x1;R[3*i+1]=cp*y-sp*z1;R[3*i+2]=sp*y+cp*z1;}
 for(k=0;k<nf;k++){D[k]=R[3*F[3*k]+2]+R[3*F[3*k+1]+2]+R[3*F[3*k+2]+2];O[k]=k;}
 O.sort(function(a,b){return D[a]-D[b];});
 ctx.lineWidth=0.6;ctx.lineJoin='round';
 for(var j=0;j<nf;j++){k=O[j];var a=3*F[3*k],b=3*F[3*k+1],c=3*F[3*k+2];
  var ux=R[b]-R[a],uy=R[b+1]-R[a+1],uz=R[b+2]-R[a+2],vx=R[c]-R[a],vy=R[c+1]-R[a+1],vz=R[c+2]-R[a+2];
  var nx=uy*vz-uz*vy,ny=uz*vx-ux*vz,nz=ux*vy-uy*vx,nl=Math.sqrt(nx*nx+ny*ny+nz*nz)||1;
  var sh=nz>=0?0.22+0.78*Math.max(0,(nx*L[0]+ny*L[1]+nz*L[2])/nl):0.12;
  var r=200,g=190,bl=182;if(tex){r=C[3*k];g=C[3*k+1];bl=C[3*k+2];}
  var col='rgb('+(r*sh|0)+','+(g*sh|0)+','+(bl*sh|0)+')';
  ctx.beginPath();ctx.moveTo(w/2+s*R[a],h/2-s*R[a+1]);ctx.lineTo(w/2+s*R[b],h/2-s*R[b+1]);
  ctx.lineTo(w/2+s*R[c],h/2-s*R[c+1]);ctx.closePath();ctx.fillStyle=col;ctx.strokeStyle=col;ctx.fill();ctx.stroke();}
 cv.setAttribute('data-drawn-faces',String(j));
}
function req(){if(!pending){pending=true;requestAnimationFrame(draw);}}
cv.addEventListener('pointerdown',function(e){drag=[e.clientX,e.clientY];cv.setPointerCapture(e.pointerId);
 cv.style.cursor='grabbing';});
cv.addEventListener('pointermove',function(e){if(!drag)return;yaw+=(e.clientX-drag[0])*0.01;
 pitch=Math.max(-1.5,Math.min(1.5,pitch+(e.clientY-drag[1])*0.01));drag=[e.clientX,e.clientY];req();});
function up(){drag=null;cv.style.cursor='grab';}
cv.addEventListener('pointerup',up);cv.addEventListener('pointercancel',up);
cv.addEventListener('wheel',function(e){e.preventDefault();
 zoom=Math.max(0.3,Math.min(6,zoom*Math.exp(-e.deltaY*0.001)));req();},{passive:false});
cv.addEventListener('dblclick',function(){yaw=0.35;pitch=0.1;zoom=1;req();});
draw();
})();"""


def _b64_image(img: np.ndarray, max_side: int, fmt: str = ".jpg") -> str:
    """RGB uint8 image -> ``data:`` URI (downscaled to ``max_side``)."""
    img = np.asarray(img, np.uint8)
    k = max_side / max(img.shape[:2])
    if k < 1:
        img = cv2.resize(img, (max(1, round(img.shape[1] * k)), max(1, round(img.shape[0] * k))),
                         interpolation=cv2.INTER_AREA)
    params = [cv2.IMWRITE_JPEG_QUALITY, 88] if fmt == ".jpg" else []
    ok, buf = cv2.imencode(fmt, np.ascontiguousarray(img[..., ::-1]), params)
    if not ok:
        raise RuntimeError("image encoding failed")
    mime = "image/jpeg" if fmt == ".jpg" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def loss_curve_svg(values, title: str, width: int = 340, height: int = 170) -> str:
    """One loss curve as an inline SVG polyline (log10 y axis when all values are positive)."""
    y = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    esc = html.escape(title)
    if len(y) == 0:
        return f'<svg width="{width}" height="{height}"><text x="10" y="20">{esc}: no finite values</text></svg>'
    log = bool((y > 0).all())
    t = np.log10(y) if log else y
    lo, hi = float(t.min()), float(t.max())
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pl, pr, pt, pb = 58, 10, 24, 22
    xs = pl + (np.arange(len(t)) / max(len(t) - 1, 1)) * (width - pl - pr)
    ys = pt + (hi - t) / (hi - lo) * (height - pt - pb)
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys))

    def lab(v):
        return f"{10 ** v:.3g}" if log else f"{v:.3g}"

    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
            f'<text x="{pl}" y="15" font-size="12" font-weight="bold">{esc}</text>'
            f'<text x="{width - pr}" y="15" font-size="10" text-anchor="end">{len(y)} steps{" (log)" if log else ""}'
            f'</text><line x1="{pl}" y1="{pt}" x2="{pl}" y2="{height - pb}" stroke="#999"/>'
            f'<line x1="{pl}" y1="{height - pb}" x2="{width - pr}" y2="{height - pb}" stroke="#999"/>'
            f'<text x="{pl - 4}" y="{pt + 4}" font-size="10" text-anchor="end">{lab(hi)}</text>'
            f'<text x="{pl - 4}" y="{height - pb}" font-size="10" text-anchor="end">{lab(lo)}</text>'
            f'<text x="{pl}" y="{height - 6}" font-size="10">0</text>'
            f'<text x="{width - pr}" y="{height - 6}" font-size="10" text-anchor="end">{len(y) - 1}</text>'
            f'<polyline fill="none" stroke="#2a6fd6" stroke-width="1.5" points="{pts}"/></svg>')


def viewer_mesh(vertices, faces, vt=None, ft=None, texture=None, max_faces: int = MAX_FACES) -> dict:
    """Compact mesh for the canvas viewer: centred, unit-sized, ≤ ``max_faces`` faces (evenly strided),
    unused vertices dropped, per-face colours sampled from the texture at the face's mean UV."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    keep = np.arange(len(f))
    if len(f) > max_faces:
        keep = np.unique(np.linspace(0, len(f) - 1, max_faces).round().astype(np.int64))
    f = f[keep]
    used, inv = np.unique(f.reshape(-1), return_inverse=True)
    v, f = v[used], inv.reshape(-1, 3)
    lo, hi = v.min(0), v.max(0)
    v = (v - 0.5 * (lo + hi)) / max(float(np.linalg.norm(hi - lo)) / 2, 1e-12)
    out = {"v": np.round(v, 4).reshape(-1).tolist(), "f": f.reshape(-1).tolist(), "c": None}
    if texture is not None and vt is not None and ft is not None:
        tex = np.asarray(texture, np.uint8)
        uv = np.asarray(vt, np.float64)[np.asarray(ft, np.int64)[keep]].mean(1)
        th, tw = tex.shape[:2]
        px = np.clip(np.round(uv[:, 0] * (tw - 1)), 0, tw - 1).astype(int)
        py = np.clip(np.round((1 - uv[:, 1]) * (th - 1)), 0, th - 1).astype(int)  # OBJ UVs: v up
        out["c"] = tex[py, px, :3].reshape(-1).tolist()
    return out


_STAGES = {"load_model": "load head model", "detect": "detect faces", "fit": "fit", "network": "network prediction",
           "identity_check": "same-person check", "texture": "texture and landmarks"}


def _stage_name(key: str) -> str:
    """Timing keys as words; sub-stages of the fit (``fit.photo``) indented under it."""
    if key.startswith("fit."):
        return "\u2003" + key[4:] + " stage"
    return _STAGES.get(key, key.replace("_", " "))


def _table(header, rows) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def iod_percent(rec) -> np.ndarray:
    """(N,) landmark reprojection error in percent of each photo's inter-ocular distance
    (:attr:`mfnet.types.Reconstruction.reprojection_error_iod`; also for record-like objects)."""
    from ..types import Reconstruction

    return Reconstruction.reprojection_error_iod.fget(rec)


def build_report(rec, *, cams=None, overlays=(), warnings=(), model_version=None, files=()) -> str:
    """The report page as a string. ``overlays``: (view name, file name, RGB image) triples."""
    from .cameras import axis_angle_to_matrix, euler_degrees, inv_distances

    n = len(rec.names)
    err = np.asarray(rec.reprojection_error_px, np.float64)
    verts = np.asarray(rec.vertices, np.float64)
    faces = np.asarray(rec.faces, np.int64)
    rot = cams.R_view if cams is not None else axis_angle_to_matrix(
        np.asarray(rec.views.rotation.detach().cpu() if hasattr(rec.views.rotation, "detach") else rec.views.rotation,
                   np.float64).reshape(n, 3))
    ypr = euler_degrees(rot)
    scale = np.asarray(rec.views.scale.detach().cpu() if hasattr(rec.views.scale, "detach") else rec.views.scale,
                       np.float64).reshape(-1)
    e = html.escape
    model = e(str(rec.model_name)) + (f" ({e(str(model_version))})" if model_version else "")
    parts = [f"<h1>mfnet reconstruction</h1><p>Model <b>{model}</b> · {n} view{'s' * (n != 1)} · "
             f"{len(verts)} vertices, {len(faces)} faces · crop {int(rec.crop_size)} px · mean landmark "
             f"reprojection error <b>{err.mean() if n else float('nan'):.2f} px</b></p>"]
    iod = iod_percent(rec)
    dist = [f"{100.0 / ki:.0f} cm" if ki > 0 else "far (orthographic)" for ki in inv_distances(rec.views)]
    rows = [(rec.names[i], f"{err[i]:.2f}", f"{iod[i]:.1f}", *(f"{a:.1f}" for a in ypr[i]), f"{scale[i]:.3f}",
             dist[i]) for i in range(n)]
    header = ("view", "landmark error (px)", "(% eye distance)", "yaw °", "pitch °", "roll °", "scale",
              "camera distance")
    parts.append("<h2>Views</h2>" + _table(header, rows))
    if rec.timings:
        trows = [(_stage_name(k), f"{float(v):.2f}") for k, v in rec.timings.items() if k != "total"]
        total = rec.timings.get("total", sum(float(v) for k, v in rec.timings.items() if "." not in k))
        trows.append(("total", f"{float(total):.2f}"))
        parts.append("<h2>Timings</h2>" + _table(("stage", "seconds"), trows))
    if warnings:
        items = "".join(f'<li class="warn">{e(str(w))}</li>' for w in warnings)
        parts.append(f"<h2>Warnings</h2><ul>{items}</ul>")
    if cams is not None:
        parts.append(f"<p><small>Cameras computed from {e(cams.posed_source)}.</small></p>")
    if overlays:
        figs = "".join(f'<figure class="ov"><a href="{e(fn)}"><img alt="{e(name)}" src="{_b64_image(img, 900)}"></a>'
                       f"<figcaption>{e(name)} — green: detected, red: fitted</figcaption></figure>"
                       for name, fn, img in overlays)
        parts.append(f'<h2>Overlays</h2><div class="grid">{figs}</div>')
    if rec.history:
        svgs = "".join(loss_curve_svg(v, f"{k}") for k, v in rec.history.items() if len(v))
        parts.append(f'<h2>Loss curves</h2><div class="grid">{svgs}</div>')
    mesh = viewer_mesh(verts, faces, rec.vt, rec.ft, rec.texture)
    data = json.dumps(mesh, separators=(",", ":")).replace("</", "<\\/")
    tex_toggle = ('<label><input type="checkbox" id="viewer-tex"> texture colours</label> · '
                  if mesh["c"] is not None else "")
    parts.append(f'<h2>3D view</h2><canvas id="viewer" width="560" height="560"></canvas><p><small>{tex_toggle}'
                 f'drag to rotate, wheel to zoom, double-click to reset · {len(mesh["f"]) // 3} faces shown'
                 f'</small></p><script type="application/json" id="mesh-data">{data}</script>')
    if rec.texture is not None:
        parts.append(f'<h2>Texture</h2><a href="texture.png"><img alt="texture" width="384" '
                     f'src="{_b64_image(rec.texture, 512, ".png")}"></a>')
    if files:
        links = " · ".join(f'<a href="{e(f)}">{e(f)}</a>' for f in files)
        parts.append(f"<h2>Files</h2><p>{links}</p>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mfnet reconstruction — '
            f'{e(str(rec.model_name))}</title><meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<style>{CSS}</style></head><body>\n{body}\n<script>{VIEWER_JS}</script></body></html>\n")


def write_report(path: str | Path, rec, **kwargs) -> Path:
    """Write :func:`build_report` to ``path`` atomically."""
    path = Path(path)
    text = build_report(rec, **kwargs)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
