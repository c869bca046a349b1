"""User-facing detection errors and warnings."""
from __future__ import annotations

from mfnet.errors import MfnetError


class DetectionError(MfnetError):
    """Base class for landmark-detection errors."""


class NoFaceError(DetectionError):
    """No face was found in a photo."""


class DetectorUnavailableError(DetectionError):
    """A detector backend (package or model file) is not installed."""


class DetectionWarning(UserWarning):
    """Non-fatal detection issues (several faces, retries...)."""
