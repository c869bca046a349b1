"""Multi-view training datasets: one item = one subject seen from ``n_views`` cameras at once.

Every dataset returns dicts with ``images (N, 3, S, S)`` float in [0, 1] (square face crops),
``landmarks (N, 68, 2)`` iBUG points in renderer crop pixels, ``landmark_weights (N, 68)`` and
``subject`` (a name); synthetic items add the ground truth (``shape``, ``expression``,
``view_rotations``), FaceScape items the cameras (``K (N, 3, 3)``, ``Rt (N, 3, 4)``).
Views are chosen as in the paper (§4.1): the most frontal photo is the anchor (view 0), the
others are drawn at random, alternately from the subject's left (yaw < 0) and right (yaw > 0).
The choice depends only on ``(seed, epoch, index)`` (:meth:`set_epoch`), so runs are repeatable.

Layouts of the photo datasets (landmarks come from ``mfnet prepare``, see :func:`prepare_dataset`):

* :class:`FolderDataset`: ``ROOT/<subject>/<view>.jpg|.jpeg|.png`` (any names; >= 2 per subject).
* :class:`MultiPIE`: the release as distributed, ``ROOT/session01/multiview/001/01/05_1/001_01_01_051_00.png``
  i.e. ``ROOT/session<SS>/multiview/<subject>/<recording>/<camera>/<subj>_<SS>_<rec>_<cam>_<illum>.png``.
  The anchor is camera 05_1 (frontal); left cameras 14_0, 13_0, 08_0, 09_0 (-15..-60 deg), right
  cameras 05_0, 04_1, 19_0, 20_0 (+15..+60 deg); all views of an item share the flash (illumination
  number), i.e. they were taken at the same moment under the same light.
* :class:`FaceScapeMultiView`: ``ROOT/<subject>/<expression>/<camera>.jpg`` with
  ``ROOT/<subject>/<expression>/params.json`` holding ``"<camera>_K"`` (3x3), ``"<camera>_Rt"`` (3x4)
  and optionally ``"<camera>_valid"`` per camera (the FaceScape multi-view release).
* :class:`SyntheticMultiView`: rendered on the fly from a head model, or a folder written by
  ``mfnet synth`` (``ROOT/synth.json``, ``ROOT/<subject>/view_<yaw>.png`` + ``meta.npz``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import MfnetError
from .prepare import prepare_dataset  # noqa: F401  (re-exported: the landmark cache of a dataset)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MULTIPIE_ANCHOR = "05_1"
MULTIPIE_LEFT = ("14_0", "13_0", "08_0", "09_0")
MULTIPIE_RIGHT = ("05_0", "04_1", "19_0", "20_0")
_MULTIPIE_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d{2})_(\d{3})_(\d{2})\.png$")


class DatasetLayoutError(MfnetError):
    """A dataset folder is not laid out as expected."""


class LandmarkCacheError(MfnetError):
    """The landmark cache of a photo dataset is missing."""


def select_views(yaws: Sequence[float], n_views: int, g: torch.Generator) -> list[int]:
    """Indices of ``n_views`` views: the most frontal first, then random ones alternately from the
    left (yaw < 0) and right (yaw > 0) pools (from whatever is left when a pool runs out)."""
    yaws = np.asarray(yaws, np.float64)
    if len(yaws) < n_views:
        raise ValueError(f"need {n_views} views, have {len(yaws)}")
    anchor = int(np.argmin(np.abs(yaws)))
    pools = [[i for i in range(len(yaws)) if i != anchor and yaws[i] < 0],
             [i for i in range(len(yaws)) if i != anchor and yaws[i] >= 0]]
    chosen = [anchor]
    for k in range(n_views - 1):
        pool = pools[k % 2] or pools[(k + 1) % 2]
        j = pool.pop(int(torch.randint(len(pool), (1,), generator=g)))
        chosen.append(j)
    return chosen


class MultiViewDataset(Dataset):
    """Base: ``n_views``, ``image_size``, seeded per-item randomness and :meth:`set_epoch`."""

    def __init__(self, n_views: int = 3, image_size: int = 224, seed: int = 0):
        self.n_views, self.image_size, self.seed, self.epoch = int(n_views), int(image_size), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _generator(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + int(index))


# ------------------------------------------------------------------------------------------- synthetic
class SyntheticMultiView(MultiViewDataset):
    """Synthetic subjects with ground truth, rendered on the fly (``model``) or read from ``root``.

    On the fly, subject ``i`` has a fixed identity (seed ``seed * 100003 + i``); its views are the
    fixed ``yaws`` or, with ``yaws=None``, a random frontal anchor (|yaw| <= 10) plus random sides
    (20..75 deg), redrawn every epoch. ``cache=True`` keeps rendered items in memory (use with fixed
    yaws). ``shape_scale`` / ``expression_scale`` widen or narrow the random codes (0: neutral);
    ``shape_offset`` moves the population's mean shape code away from the model's mean.
    A folder written by ``mfnet synth`` is read with :meth:`from_folder`.
    """

    def __init__(self, model=None, n_subjects: int = 1000, yaws: Sequence[float] | None = (-45.0, 0.0, 45.0),
                 image_size: int = 224, seed: int = 0, n_views: int | None = None, cache: bool = False,
                 root: str | Path | None = None, shape_scale: float = 1.0, expression_scale: float = 1.0,
                 shape_offset: float | Sequence[float] = 0.0):
        n = n_views or (len(yaws) if yaws is not None else 3)
        super().__init__(n, image_size, seed)
        self.model, self.n_subjects, self.yaws, self.cache = model, int(n_subjects), yaws, cache
        self.shape_scale, self.expression_scale = float(shape_scale), float(expression_scale)
        self.shape_offset = None
        if model is not None and np.any(np.asarray(shape_offset) != 0):
            self.shape_offset = torch.broadcast_to(torch.as_tensor(shape_offset, dtype=model.v_template.dtype),
                                                   (model.n_shape,)).clone()
        self.root, self._memo, self._subjects = (Path(root) if root else None), {}, []
        if self.root is not None:
            self._subjects = _synth_subjects(self.root)
            self.n_subjects = len(self._subjects)
        elif model is None:
            raise ValueError("SyntheticMultiView needs a head model (on the fly) or a root folder (mfnet synth)")

    @classmethod
    def from_folder(cls, root: str | Path, n_views: int = 3, seed: int = 0) -> "SyntheticMultiView":
        info = json.loads((Path(root) / "synth.json").read_text()) if (Path(root) / "synth.json").is_file() else {}
        return cls(None, yaws=None, image_size=int(info.get("image_size", 0)), seed=seed, n_views=n_views, root=root)

    def __len__(self) -> int:
        return self.n_subjects

    def _yaws(self, g: torch.Generator) -> list[float]:
        if self.yaws is not None:
            return [float(y) for y in self.yaws]
        u = torch.rand(self.n_views, generator=g).tolist()
        out = [20.0 * u[0] - 10.0]
        for k in range(1, self.n_views):
            side = -1.0 if k % 2 else 1.0
            out.append(side * (20.0 + 55.0 * u[k]))
        return out

    def __getitem__(self, index: int) -> dict:
        if index < 0 or index >= len(self):
            raise IndexError(index)
        if self.root is not None:
            return self._from_folder(index)
        key = (index, self.epoch if self.yaws is None else 0)
        if key in self._memo:
            return self._memo[key]
        from .synthetic import render_subject

        yaws = self._yaws(self._generator(index))
        model = self.model if self.shape_offset is None else _OffsetShape(self.model, self.shape_offset)
        with torch.no_grad():
            s = render_subject(model, yaws, self.image_size, seed=self.seed * 100003 + index,
                               shape_scale=self.shape_scale, expression_scale=self.expression_scale)
        shape = s.shape if self.shape_offset is None else s.shape + self.shape_offset
        item = {"images": s.images.float(), "landmarks": s.landmarks2d.float(),
                "landmark_weights": torch.ones(len(yaws), 68), "subject": f"synth_{index:06d}",
                "shape": shape.float(), "expression": s.expression.float(),
                "view_rotations": s.view_rotations.float()}
        if self.cache:
            self._memo[key] = item
        return item

    def _from_folder(self, index: int) -> dict:
        from PIL import Image

        folder = self._subjects[index]
        meta = np.load(folder / "meta.npz")
        idx = select_views(meta["yaws"], self.n_views, self._generator(index))
        imgs = []
        for i in idx:  # our own PNGs (any size, even below the photo minimum)
            with Image.open(folder / str(meta["files"][i])) as im:
                imgs.append(np.asarray(im.convert("RGB")))
        imgs = np.stack(imgs)
        return {"images": torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0,
                "landmarks": torch.from_numpy(meta["landmarks2d"][idx]).float(),
                "landmark_weights": torch.ones(len(idx), 68), "subject": folder.name,
                "shape": torch.from_numpy(meta["shape"]).float(), "expression": torch.from_numpy(meta["expression"]).float(),
                "view_rotations": torch.from_numpy(meta["view_rotations"][idx]).float()}


class _OffsetShape:
    """A head model whose shape codes are shifted by ``offset`` (a synthetic population whose mean
    face is not the model's mean face)."""

    def __init__(self, model, offset: torch.Tensor):
        self._model, self._offset = model, offset

    def __getattr__(self, name):
        return getattr(self._model, name)

    def __call__(self, shape=None, expression=None, pose=None, **kwargs):
        return self._model(shape + self._offset.to(shape), expression, pose, **kwargs)


def _synth_subjects(root: Path) -> list[Path]:
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: no such folder; write synthetic data with `mfnet synth --out {root}`")
    subjects = sorted(p for p in root.iterdir() if (p / "meta.npz").is_file())
    if not subjects:
        raise DatasetLayoutError(f"{root}: no subject folders with meta.npz; expected ROOT/<subject>/view_<yaw>.png "
                                 f"+ meta.npz as written by `mfnet synth --out {root}`")
    return subjects


# ------------------------------------------------------------------------------------- photo datasets
class PhotoDataset(MultiViewDataset):
    """Base of the photo datasets: groups of photos of one subject at one moment, landmarks from a
    cache written by :func:`prepare_dataset` (default ``ROOT/.mfnet-cache``)."""

    kind = "folder"

    def __init__(self, root: str | Path, n_views: int = 3, image_size: int = 224, seed: int = 0,
                 cache_dir: str | Path | None = None, crop_scale: float = 1.5):
        super().__init__(n_views, image_size, seed)
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DatasetLayoutError(f"{self.root}: no such dataset folder; {self.layout_hint()}")
        self.cache_dir = Path(cache_dir) if cache_dir else self.root / ".mfnet-cache"
        self.crop_scale = crop_scale
        self._groups = self.find_groups()
        if not self._groups:
            raise DatasetLayoutError(f"{self.root}: no usable photo groups found; {self.layout_hint()}")
        self._items: list | None = None

    # layout ---------------------------------------------------------------------------
    def layout_hint(self) -> str:
        return "expected ROOT/<subject>/<view>.jpg (two or more photos per subject folder)"

    def find_groups(self) -> dict[str, list[str]]:
        """group id -> photo paths relative to root (all photos taken at one moment)."""
        groups = {}
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            files = sorted(f.name for f in d.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if len(files) >= 2:
                groups[d.name] = [f"{d.name}/{f}" for f in files]
        return groups

    def groups(self) -> dict[str, list[str]]:
        return self._groups

    # items ----------------------------------------------------------------------------
    def cache_file(self, group: str) -> Path:
        return self.cache_dir / (group.replace("/", "__") + ".npz")

    def load_cache(self, group: str) -> dict:
        f = self.cache_file(group)
        if not f.is_file():
            raise LandmarkCacheError(f"{self.root}: no landmarks for {group!r} in {self.cache_dir}; run "
                                     f"`mfnet prepare {self.root} --kind {self.kind}` first")
        with np.load(f) as z:
            return {k: z[k] for k in z.files}

    def build_items(self) -> list:
        """Items: (group, candidate photos, their yaws); groups with too few detected faces are dropped."""
        items = []
        for g in self._groups:
            c = self.load_cache(g)
            ok = np.nonzero(c["ok"])[0]
            if len(ok) >= self.n_views:
                items.append((g, [str(c["names"][i]) for i in ok], c["yaw"][ok]))
        return items

    @property
    def items(self) -> list:
        if self._items is None:
            self._items = self.build_items()
            if not self._items:
                raise DatasetLayoutError(f"{self.root}: no subject has {self.n_views} photos with a detected face")
        return self._items

    def __len__(self) -> int:
        return len(self.items)

    def choose(self, index: int) -> tuple[str, list[str]]:
        group, names, yaws = self.items[index][:3]
        idx = select_views(yaws, self.n_views, self._generator(index))
        return group, [names[i] for i in idx]

    def __getitem__(self, index: int) -> dict:
        from ..detect import face_crop
        from ..utils.images import load_view

        group, names = self.choose(index)
        c = self.load_cache(group)
        where = {str(n): i for i, n in enumerate(c["names"])}
        imgs, lmks, wts = [], [], []
        for name in names:
            i = where[name]
            v = load_view(self.root / name)
            crop = face_crop(c["points"][i], size=self.image_size, scale=self.crop_scale)
            imgs.append(crop.warp(v.image, v.scale_xy, border="replicate"))
            lmks.append(crop.to_crop(c["points"][i].astype(np.float64)) + 0.5)
            wts.append(c["visibility"][i])
        item = {"images": torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255.0,
                "landmarks": torch.from_numpy(np.stack(lmks)).float(),
                "landmark_weights": torch.from_numpy(np.stack(wts)).float(), "subject": group}
        item.update(self.extra(group, names))
        return item

    def extra(self, group: str, names: list[str]) -> dict:
        return {}


class FolderDataset(PhotoDataset):
    """``ROOT/<subject>/<view>.jpg``: each subject folder holds photos taken at the same moment."""


class MultiPIE(PhotoDataset):
    """CMU Multi-PIE multiview images: anchor camera 05_1 + left / right cameras, same flash."""

    kind = "multipie"

    def __init__(self, root, n_views: int = 3, image_size: int = 224, seed: int = 0, cache_dir=None,
                 crop_scale: float = 1.5, left: Sequence[str] = MULTIPIE_LEFT, right: Sequence[str] = MULTIPIE_RIGHT):
        self.left, self.right = tuple(left), tuple(right)
        super().__init__(root, n_views, image_size, seed, cache_dir, crop_scale)

    def layout_hint(self) -> str:
        return ("expected the Multi-PIE release layout ROOT/session01/multiview/001/01/05_1/001_01_01_051_00.png "
                "(session/multiview/subject/recording/camera/image); ROOT is the folder holding session01..04")

    def find_groups(self) -> dict[str, list[str]]:
        cams = (MULTIPIE_ANCHOR,) + self.left + self.right
        groups = {}
        for rec in sorted(self.root.glob("session*/multiview/*/*")):
            files = [f"{c}/{f.name}" for c in cams if (rec / c).is_dir()
                     for f in sorted((rec / c).iterdir()) if _MULTIPIE_NAME.match(f.name)]
            if files:
                rel = rec.relative_to(self.root).as_posix()
                groups[rel] = [f"{rel}/{f}" for f in files]
        return groups

    def build_items(self) -> list:
        items = []
        for g in self._groups:
            c = self.load_cache(g)
            by_illum: dict[str, dict[str, str]] = {}
            for name, ok in zip(c["names"], c["ok"]):
                cam, fname = str(name).split("/")[-2:]
                if ok:
                    by_illum.setdefault(fname[-6:-4], {})[cam] = str(name)
            for illum, views in sorted(by_illum.items()):
                lefts = [views[c] for c in self.left if c in views]
                rights = [views[c] for c in self.right if c in views]
                if MULTIPIE_ANCHOR in views and lefts and rights and 1 + len(lefts) + len(rights) >= self.n_views:
                    items.append((g, views[MULTIPIE_ANCHOR], lefts, rights))
        return items

    def choose(self, index: int) -> tuple[str, list[str]]:
        group, anchor, lefts, rights = self.items[index]
        yaws = [0.0] + [-1.0] * len(lefts) + [1.0] * len(rights)
        idx = select_views(yaws, self.n_views, self._generator(index))
        names = [anchor] + lefts + rights
        return group, [names[i] for i in idx]


class FaceScapeMultiView(PhotoDataset):
    """FaceScape multi-view photos: ``ROOT/<subject>/<expression>/<camera>.jpg`` + ``params.json``."""

    kind = "facescape"

    def layout_hint(self) -> str:
        return ("expected ROOT/<subject>/<expression>/<camera>.jpg with ROOT/<subject>/<expression>/params.json "
                "holding '<camera>_K' and '<camera>_Rt' (the FaceScape multi-view release)")

    def find_groups(self) -> dict[str, list[str]]:
        groups = {}
        for pj in sorted(self.root.glob("*/*/params.json")):
            d = pj.parent
            try:
                params = json.loads(pj.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise DatasetLayoutError(f"{pj}: unreadable camera file ({exc}); re-extract it from the release")
            rel = d.relative_to(self.root).as_posix()
            files = [f"{rel}/{f.name}" for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES
                     and f"{f.stem}_K" in params and params.get(f"{f.stem}_valid", True)]
            if len(files) >= 2:
                groups[rel] = files
        return groups

    def extra(self, group: str, names: list[str]) -> dict:
        params = json.loads((self.root / group / "params.json").read_text())
        cams = [Path(n).stem for n in names]
        return {"K": torch.tensor([params[f"{c}_K"] for c in cams], dtype=torch.float32),
                "Rt": torch.tensor([params[f"{c}_Rt"] for c in cams], dtype=torch.float32)}


DATASET_KINDS = {"folder": FolderDataset, "multipie": MultiPIE, "facescape": FaceScapeMultiView}


def open_dataset(kind: str, root: str | Path, **kwargs) -> PhotoDataset:
    """A photo dataset by kind name ('folder', 'multipie', 'facescape')."""
    if kind not in DATASET_KINDS:
        raise DatasetLayoutError(f"unknown dataset kind {kind!r}: use one of {', '.join(DATASET_KINDS)}")
    return DATASET_KINDS[kind](root, **kwargs)
