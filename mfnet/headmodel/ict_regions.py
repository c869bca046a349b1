"""ICT-FaceKit region table (no heavy imports: the command line reads it to build its help)."""
from __future__ import annotations

#: region -> inclusive (first vertex, last vertex, first polygon, last polygon), from the kit's README
REGIONS: dict[str, tuple[tuple[int, int, int, int], ...]] = {
    "face": ((0, 9408, 0, 9229),),
    "head_neck": ((9409, 11247, 9230, 11143),),
    "mouth_socket": ((11248, 13293, 11144, 13225),),
    "eye_sockets": ((13294, 13677, 13226, 13629), (13678, 14061, 13630, 14033)),
    "gums_tongue": ((14062, 17038, 14034, 17005),),
    "teeth": ((17039, 21450, 17006, 21495),),
    "eyeballs": ((21451, 23020, 21496, 23093), (23021, 24590, 23094, 24691)),
    "lacrimal": ((24591, 24794, 24692, 24854), (24795, 24998, 24855, 25017)),
    "eye_blend": ((24999, 25022, 25018, 25032), (25023, 25046, 25033, 25047)),
    "eye_occlusion": ((25047, 25198, 25048, 25175), (25199, 25350, 25176, 25303)),
    "eyelashes": ((25351, 26034, 25304, 25843), (26035, 26718, 25844, 26383)),
}
DEFAULT_REGIONS: tuple[str, ...] = ("face", "head_neck", "eye_sockets", "eyeballs")
