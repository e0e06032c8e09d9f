"""The one exception type for user mistakes.

Commands turn a :class:`LayerwiseError` into a single ``Error: ...`` line and a
non-zero exit, never a traceback; the message names the fix.
"""


class LayerwiseError(ValueError):
    """Bad input from the user: a wrong spec, a missing file, a shape that does not fit."""
