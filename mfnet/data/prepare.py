"""The landmark cache of a photo dataset (``mfnet prepare``): every photo's 68 landmarks detected once,
one file per group, written atomically and resumable (:class:`mfnet.data.datasets.PhotoDataset` reads it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.io import atomic_path


def prepare_dataset(dataset, cache_dir: str | Path | None = None, backend: str = "mediapipe",
                    progress: bool = True, detect_fn=None) -> dict[str, int]:
    """Detect the landmarks of every photo of ``dataset`` (a :class:`~mfnet.data.datasets.PhotoDataset`)
    once, one cache file per group (resumable: groups already cached are skipped).
    ``detect_fn(ImageView) -> Landmarks2D`` overrides the detector (tests).
    Returns counts: groups done / skipped, photos with and without a face."""
    from tqdm.auto import tqdm

    from ..detect.errors import NoFaceError
    from ..utils.images import ImageError, load_view

    if cache_dir is not None:
        dataset.cache_dir = Path(cache_dir)
    dataset.cache_dir.mkdir(parents=True, exist_ok=True)
    if detect_fn is None:
        from ..detect import detect_landmarks, get_detector

        detector = get_detector(backend)
        detect_fn = lambda v: detect_landmarks(v, backend, detector=detector)  # noqa: E731
    stats = {"groups_done": 0, "groups_skipped": 0, "faces": 0, "no_face": 0}
    for group, files in tqdm(dataset.groups().items(), desc="landmarks", unit="group", disable=not progress):
        out = dataset.cache_file(group)
        if out.is_file():
            stats["groups_skipped"] += 1
            continue
        pts = np.zeros((len(files), 68, 2), np.float32)
        vis = np.zeros((len(files), 68), np.float32)
        yaw = np.zeros(len(files), np.float32)
        ok = np.zeros(len(files), bool)
        for i, f in enumerate(files):
            try:
                d = detect_fn(load_view(dataset.root / f))
            except (NoFaceError, ImageError):
                stats["no_face"] += 1
                continue
            pts[i], vis[i], ok[i] = d.points, d.visibility, True
            yaw[i] = 0.0 if not np.isfinite(d.yaw_deg) else d.yaw_deg
            stats["faces"] += 1
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, names=np.array(files), points=pts, visibility=vis, yaw=yaw, ok=ok)
        stats["groups_done"] += 1
    dataset._items = None
    return stats
