"""A self-contained HTML report: images embedded as base64, readable offline, numbers beside their
definitions. Pages are built from small pieces so every study renders the same way."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{font-size:1.25em;margin-top:2em;
border-bottom:1px solid #bbb}table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .55em;vertical-align:top}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}.note{background:#f7f7e8;border-left:4px solid #cc9;
padding:.5em 1em}.def{color:#555;font-size:.88em}code{background:#f3f3f3;padding:0 .2em}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


def fmt(x: Any, digits: int = 4) -> str:
    """Numbers to short text: 4 significant digits, ints as is, None as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "NaN"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e5):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}g}"
    return esc(x)


def pm(mean: Any, std: Any) -> str:
    return fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std, 2)}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """rows of cells; numbers right-aligned; raw=True leaves string cells unescaped (pre-built HTML)."""
    out = ["<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, (int, float)) and not isinstance(c, bool):
                cells.append(f'<td class="num">{fmt(c)}</td>')
            else:
                cells.append(f"<td>{c if raw else esc(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out) + "</table>"


def figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def section(title: str, *parts: str) -> str:
    return f"<h2>{esc(title)}</h2>\n" + "\n".join(parts)


def para(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def details(summary: str, body: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def code_block(obj: Any) -> str:
    return "<pre>" + esc(json.dumps(obj, indent=2, sort_keys=True, default=str)) + "</pre>"


def page(title: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1>\n" + "\n".join(sections) + "</body></html>")


def run_info(config: dict, meta: dict) -> str:
    """The provenance block every report ends with."""
    rows = [("git commit", meta.get("git_commit") or "not a git checkout"),
            ("device", meta.get("device")), ("torch threads", meta.get("torch_threads")),
            ("seeds", ", ".join(str(s) for s in meta.get("seeds", []))),
            ("started", meta.get("started_at")), ("status", meta.get("status")),
            ("wall seconds", meta.get("wall_seconds"))]
    rows += [(k, v) for k, v in sorted(meta.get("versions", {}).items())]
    return section("Run", table(["what", "value"], rows), details("resolved config", code_block(config)))
