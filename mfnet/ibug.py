"""iBUG-68 landmark index groups (0-based), shared by detection, head models, losses and exports.

"Right" is the subject's right (iBUG 36-41 = subject's right eye, on the image's left).
"""
JAW = tuple(range(0, 17))
BROW_RIGHT = tuple(range(17, 22))
BROW_LEFT = tuple(range(22, 27))
NOSE = tuple(range(27, 36))
EYE_RIGHT = tuple(range(36, 42))
EYE_LEFT = tuple(range(42, 48))
MOUTH_OUTER = tuple(range(48, 60))
MOUTH_INNER = tuple(range(60, 68))
#: coarse groups by name, for per-group reports
GROUPS = {"jaw": JAW, "brows": BROW_RIGHT + BROW_LEFT, "nose": NOSE, "eyes": EYE_RIGHT + EYE_LEFT,
          "mouth": MOUTH_OUTER + MOUTH_INNER}
#: brows, nose, eyes, mouth: the 51 points that stay on one surface point when the head turns (the jaw
#: contour follows the silhouette)
INNER = tuple(range(17, 68))
#: (upper, lower) eyelid point pairs, subject's right eye then left eye (paper eq. 8).
EYELID_PAIRS = ((37, 41), (38, 40), (43, 47), (44, 46))
#: (upper, lower) lip point pairs: inner lips, then outer lips (paper eq. 9).
LIP_PAIRS = ((61, 67), (62, 66), (63, 65), (49, 59), (50, 58), (51, 57), (52, 56), (53, 55))
#: outer eye corners (subject's right, left): the inter-ocular distance.
OUTER_EYE_CORNERS = (36, 45)
#: the 7 NoW landmarks: right eye outer/inner, left eye inner/outer, nose bottom, mouth corners.
NOW_LANDMARKS = (36, 39, 42, 45, 33, 48, 54)
