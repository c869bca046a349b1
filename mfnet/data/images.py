"""Moved to :mod:`mfnet.utils.images` (photo loading sits below detection; issue 13). Kept so that
``from mfnet.data.images import ...`` goes on working."""
from ..utils.images import (MAX_SIDE, MIN_SIDE, ImageError, ImageNotFoundError, ImageReadError,  # noqa: F401
                            ImageTooSmallError, ImageView, ImageWarning, load_image, load_view, load_views)
