"""Typed read-back of the files superlens wrote: a file of the wrong shape (a list where an object
belongs, a missing key, a truncated array file) is one RunDirError line naming the file and what is
wrong, never a traceback from deep inside a report."""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator

from superlens.errors import RunDirError

NUMBER = (int, float)
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "true or false"}


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "true or false"
    if v is None:
        return "null"
    return _TYPE_NAMES.get(type(v), type(v).__name__)


def _want(types: type | tuple) -> str:
    types = types if isinstance(types, tuple) else (types,)
    if set(types) == set(NUMBER):
        return "a number"
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def read_json_file(path: str | Path) -> Any:
    """Parsed JSON of ``path``; missing or not JSON -> RunDirError naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: not found") from None
    except UnicodeDecodeError:
        raise RunDirError(f"{path}: not a text file (expected JSON)") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: unreadable JSON ({e})") from None


def check_object(path: Path, obj: Any, required: dict[str, type | tuple] | None = None) -> dict:
    if not isinstance(obj, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {_kind(obj)}")
    for key, types in (required or {}).items():
        if key not in obj:
            raise RunDirError(f"{path}: missing key {key!r}")
        v = obj[key]
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in (
                types if isinstance(types, tuple) else (types,))):
            raise RunDirError(f"{path}: {key} is {_kind(v)}, expected {_want(types)}")
    return obj


def read_object(path: str | Path, required: dict[str, type | tuple] | None = None) -> dict:
    """A JSON object with ``required`` keys of the given types."""
    path = Path(path)
    return check_object(path, read_json_file(path), required)


def read_meta(run: str | Path) -> dict:
    """meta.json of a run directory: an object whose 'kind' (when present) is a string."""
    meta = read_object(Path(run) / "meta.json")
    if "kind" in meta and not isinstance(meta["kind"], str):
        raise RunDirError(f"{Path(run) / 'meta.json'}: kind is {_kind(meta['kind'])}, expected a string")
    return meta


def read_rows(path: str | Path, required: dict[str, type | tuple] | None = None) -> list[dict]:
    """A JSON list of objects (table rows), each with ``required`` columns."""
    path = Path(path)
    rows = read_json_file(path)
    if not isinstance(rows, list):
        raise RunDirError(f"{path}: expected a JSON list of rows, got {_kind(rows)}")
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise RunDirError(f"{path}: row {i} is {_kind(r)}, expected an object")
        for key, types in (required or {}).items():
            if key not in r:
                raise RunDirError(f"{path}: row {i} has no column {key!r}")
            if not isinstance(r[key], types):
                raise RunDirError(f"{path}: row {i}: {key} is {_kind(r[key])}, expected {_want(types)}")
    return rows


def read_npz(path: str | Path, keys: tuple[str, ...] = ()) -> dict:
    """The arrays of an .npz file (loaded into memory), with ``keys`` present."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: not found")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise RunDirError(f"{path}: unreadable .npz ({' '.join(str(e).split())[:160]})") from None
    for k in keys:
        if k not in arrays:
            raise RunDirError(f"{path}: missing array {k!r}")
    return arrays


@contextlib.contextmanager
def file_contents(path: str | Path, what: str = "") -> Iterator[None]:
    """Inside the block, a KeyError / TypeError / ValueError / IndexError / AttributeError (what a
    wrong-shaped file gives to the code that reads it) becomes a RunDirError naming ``path``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        detail = f"missing key {e}" if isinstance(e, KeyError) else " ".join(str(e).split())[:160]
        raise RunDirError(f"{path}: {what or 'unexpected contents'} ({detail})") from None


def read_group(path: Path, indices: list[int]) -> dict | None:
    """A sweep's finished-group file, or None when it is missing. A file of the wrong shape raises
    RunDirError (the engine then runs the group again): an object with 'points' equal to
    ``indices`` and one row (an object with 'point') per point."""
    if not path.exists():
        return None
    g = read_object(path, {"points": list, "rows": list})
    if g["points"] != indices:
        raise RunDirError(f"{path}: points {g['points']} are not this group's {indices}")
    pts = [r.get("point") if isinstance(r, dict) else None for r in g["rows"]]
    if not all(isinstance(i, int) for i in pts) or sorted(pts) != sorted(indices):
        raise RunDirError(f"{path}: rows do not match the group's points {indices}")
    return g
