"""Face detection and 2D landmarks (iBUG-68, original-photo pixels).

Backends: MediaPipe face mesh (default, 478-point mesh kept) and dlib
(HOG + 68-point shape predictor). Heavy packages are imported on first use.
"""
from .crop import FaceCrop, face_crop, points_to_crop, points_to_original, warp_to_crop
from .detect import BACKENDS, detect_faces, detect_landmarks, detect_views, get_detector, make_detector
from .errors import DetectionError, DetectionWarning, DetectorUnavailableError, NoFaceError
from .landmarks import IBUG68_FLIP, MP_TO_IBUG68, Landmarks2D, flip_points_horizontally, mediapipe_to_ibug68
from .visibility import visibility_from_yaw, yaw_from_mesh, yaw_from_points

__all__ = [
    "BACKENDS", "DetectionError", "DetectionWarning", "DetectorUnavailableError", "FaceCrop", "IBUG68_FLIP",
    "Landmarks2D", "MP_TO_IBUG68", "NoFaceError", "detect_faces", "detect_landmarks", "detect_views",
    "face_crop", "flip_points_horizontally", "get_detector", "make_detector", "mediapipe_to_ibug68",
    "points_to_crop", "points_to_original", "visibility_from_yaw", "warp_to_crop", "yaw_from_mesh",
    "yaw_from_points",
]
