"""Training logs: TensorBoard event files with scalars and images (the set-up installs tensorboard)."""
from __future__ import annotations

import numpy as np

from mfnet.train.logger import CSVLogger, make_logger


def test_tensorboard_logger_writes_scalars_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = make_logger(tmp_path / "tb", backend="tensorboard")
    for step in range(3):
        log.add_scalar("loss/total", 1.0 / (step + 1), step)
    log.add_image("views", (np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8), 2)
    log.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    values = [e.value for e in acc.Scalars("loss/total")]
    assert np.allclose(values, [1.0, 0.5, 1 / 3])
    img = acc.Images("views")[0]
    assert (img.width, img.height) == (24, 16)


def test_csv_fallback(tmp_path):
    log = CSVLogger(tmp_path / "csv")
    log.add_scalar("loss", 0.25, 7)
    log.close()
    assert "0.25" in next((tmp_path / "csv").glob("*.csv")).read_text()
