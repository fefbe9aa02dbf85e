"""Errors that the CLI maps to a one-line message and an exit code."""


class SuperlensError(Exception):
    """A user-facing error: its message is one line that names the field or path at fault."""

    exit_code = 1


class ConfigError(SuperlensError):
    """A configuration value out of range, an unknown key, or an unreadable config file."""

    exit_code = 2


class RunDirError(SuperlensError):
    """A run directory that exists, is missing, or holds something unexpected."""

    exit_code = 2


class DataError(SuperlensError):
    """A data set folder that is missing or malformed."""

    exit_code = 2


class CheckpointError(SuperlensError):
    """A checkpoint that is corrupt or does not match its config."""

    exit_code = 2
