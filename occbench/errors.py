"""User-facing errors: one line, naming the file or value at fault.

The CLI prints ``occbench: error: <message>`` and exits with status 2 for these;
anything else is a bug and keeps its traceback.
"""


class OccbenchError(Exception):
    """An error caused by input or environment, reported to the user in one line."""


class DataError(OccbenchError):
    """A data file or folder is missing, empty, corrupt or malformed."""


class ConfigError(OccbenchError):
    """An unknown name or an invalid value was given (form, position, size, model ...)."""
