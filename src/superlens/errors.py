"""Errors that the CLI maps to a one-line message and an exit code."""
import os


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


def one_line(e: BaseException, *, bare_superlens: bool = False) -> str:
    """An exception as one line of text for an error message: "TypeName: message", whitespace
    collapsed. bare_superlens: a SuperlensError's message alone (it already names the field or path)."""
    text = " ".join(str(e).split())
    if bare_superlens and isinstance(e, SuperlensError):
        return text
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


class RunFault(SuperlensError):
    """The system failed a run that had started writing (a full disk, a vanished folder): exit 1,
    and the message says what was kept."""

    exit_code = 1


def os_error_line(e: OSError) -> str:
    """'PATH: plain meaning of the errno' (os.strerror), e.g. 'out/run: Read-only file system'."""
    meaning = os.strerror(e.errno) if e.errno else (e.strerror or type(e).__name__)
    where = e.filename if e.filename is not None else None
    if where is None:
        return meaning
    if e.filename2 is not None:
        return f"{where} -> {e.filename2}: {meaning}"
    return f"{where}: {meaning}"
