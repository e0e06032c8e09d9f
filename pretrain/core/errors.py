"""The exception types for user mistakes.

Commands turn a :class:`LayerwiseError` into a single ``Error: ...`` line and a
non-zero exit, never a traceback; the message names the fix.
"""


class LayerwiseError(ValueError):
    """Bad input from the user: a wrong spec, a missing file, a shape that does not fit."""


class UsageMistake(LayerwiseError):
    """Options that do not go together, found by the library rather than by the parser (often only once the data
    is read, as ``--augment`` on data that is not images): the fix is in the command line, so the commands exit 2
    with their usage line, as for a mistake click finds."""
