"""Errors users are expected to hit (bad files, missing models, no face...).

The CLI prints these as one readable line and exits non-zero, without a traceback.
"""


class MfnetError(Exception):
    """Base class for expected, user-facing errors. The message names the file and the fix."""
