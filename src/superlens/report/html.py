"""A self-contained HTML report: images embedded as base64, readable offline, numbers beside their
definitions. Pages are built from small pieces so every study renders the same way."""
from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #444}h2{font-size:1.25em;margin-top:2em;
border-bottom:1px solid #bbb}table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
td,th{border:1px solid #ccc;padding:.25em .55em;vertical-align:top}th{background:#f0f0f0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.pm{font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}.note{background:#f7f7e8;border-left:4px solid #cc9;
padding:.5em 1em}.def{color:#555;font-size:.88em}code{background:#f3f3f3;padding:0 .2em}
small.key{display:block;color:#777;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.78em}
details{margin:.6em 0}summary{cursor:pointer;color:#345}
table.verdicts{width:100%}table.verdicts td{max-width:34em}table.verdicts td.num{max-width:none}
table.verdicts td.claim{min-width:11em;max-width:17em}table.verdicts td.where{min-width:16em}
table.verdicts.phases{width:auto}table.verdicts td.why{min-width:26em;max-width:none}
.verdict{font-weight:600;padding:.05em .45em;border-radius:3px;white-space:nowrap;color:#fff}
.v-reproduced{background:#2a7d3b}.v-answered{background:#2b5d9c}.v-not-reproduced{background:#b36b00}
.v-contradicted{background:#b3261e}.v-other{background:#6b6b6b}
.wide{overflow-x:auto;max-width:100%}
"""


def esc(x: Any) -> str:
    return html.escape(str(x))


_CODE = re.compile(r"`([^`\n]+)`")
# a metrics.json-style key: lower-case words joined by "_" (y_i, sum_j, x86_64 are not: one-letter or
# numeric subscripts are mathematics or version strings)
_KEY = re.compile(r"(?<![\w/.-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w/-])")


def is_key(token: str) -> bool:
    parts = token.split("_")
    return (_KEY.fullmatch(token) is not None
            and any(len(q) >= 2 and not q.isdigit() for q in parts[1:]))


def _code_keys(escaped: str) -> str:
    return _KEY.sub(lambda m: f"<code>{m.group(0)}</code>" if is_key(m.group(0)) else m.group(0),
                    escaped)


_PM = re.compile(r"[-+0-9.e]+(?:[×%]| %)? ± [-+0-9.e]+")


def rich(text: Any) -> str:
    """Escaped text with inline `code` (Markdown backticks) rendered as <code>, so definitions
    written for plain text show no raw backticks; a metrics.json key named in prose is set in code
    type too, so it reads as a name, not as a word."""
    parts = _CODE.split(esc(text))  # even: prose, odd: code spans
    return "".join(f"<code>{q}</code>" if i % 2 else _code_keys(q) for i, q in enumerate(parts))


def plain(text: Any) -> str:
    """Text for attributes (alt=...): escaped, backticks dropped."""
    return esc(str(text).replace("`", ""))


# human names of metric keys; a key not listed gets a name built from its words (humanize)
LABELS: dict[str, str] = {
    "accuracy": "test accuracy",
    "gain_mean": "learned gain (response slope), mean over features",
    "weff_diag_mean": "diagonal of W_eff, mean",
    "optimal_gain": "optimal gain, closed form γ*",
    "l2_naive_over_learned": "L2 loss: naive / learned",
    "l4_naive_over_learned": "L4 loss: naive / learned",
    "l2_trained_l2_naive_over_learned": "L2-trained model, L2 loss: naive / learned",
    "ignored_features": "features ignored (gain below threshold)",
    "kept_gain_mean": "gain of kept features, mean",
    "kept_gain_std": "gain of kept features, std over features",
    "mse_active_mean": "per-feature MSE when active, mean",
    "cos_mean": "mean cosine between samples (paper's definition)",
    "neuron_cos_mean": "mean cosine between neurons",
    "neuron_abs_cos_mean": "mean |cosine| between neurons",
    "silhouette_tsne": "silhouette of the t-SNE embedding (paper's definition)",
    "davies_bouldin_tsne": "Davies–Bouldin index of the t-SNE embedding (paper's definition)",
    "silhouette_raw": "silhouette of the raw features",
    "davies_bouldin_raw": "Davies–Bouldin index of the raw features",
    "effective_rank": "effective rank of the features",
    "l2_trained_from_main_model": "L2 numbers taken from the trained models themselves",
    "l2_trained_ignored_features": "L2-trained: features ignored",
    "l2_trained_kept_gain_mean": "L2-trained: gain of kept features, mean",
    "l2_trained_kept_gain_std": "L2-trained: gain of kept features, std over features",
    "l2_trained_kept_gain_min": "L2-trained: smallest gain of a kept feature",
    "l2_trained_kept_gain_max": "L2-trained: largest gain of a kept feature",
    "l2_trained_gain_mean": "L2-trained: gain, mean over features",
    "l2_trained_mse_active_mean": "L2-trained: per-feature MSE when active, mean",
    "l2_trained_mse_active_range": "L2-trained: per-feature MSE when active, max − min",
    "l2_trained_l2_loss": "L2-trained: L2 loss",
    "l2_trained_l4_loss": "L2-trained: L4 loss",
    "optimal_gain_per_feature_mean": "optimal gain per feature (closed form), mean",
    "optimal_gain_line_search": "optimal output scale, training distribution (line search)",
    "optimal_gain_line_search_single": "optimal output scale, one feature active, x > 0 (line search)",
    "optimal_gain_line_search_isolated": "optimal output scale, one feature active, x ~ U(−1, 1)",
    "gain_ratio_K_mean": "cross-gain leak ratio K, mean",
    "negative_residual_mean": "negative-input residual, mean",
    "value_at_minus1_mean": "self-response at x = −1, mean",
    "negative_residual_reduces_interference": "does the residual reduce interference?",
    "negative_residual_pays_for_itself": "does the residual pay for itself?",
    "eval_samples": "evaluation samples",
    "train_seconds": "training time (s)",
}
_WORDS = {"mse": "MSE", "l2": "L2", "l4": "L4", "lq": "Lq", "cos": "cos", "abs": "|·|",
          "std": "std", "tsne": "t-SNE", "weff": "W_eff", "w": "W", "d": "D", "pca": "PCA",
          "max": "max", "min": "min", "avg": "mean", "pct": "%", "n": "number of"}


def humanize(key: str) -> str:
    """'l2_trained_kept_gain_min' -> 'L2 trained kept gain min': a readable fallback label."""
    words = [_WORDS.get(w, w) for w in str(key).split("_") if w]
    return " ".join(words) if words else str(key)


def label(key: str) -> str:
    """HTML for a row label: the human name, the raw key (as in metrics.json) below it in small
    monospace type."""
    return f'{esc(LABELS.get(key) or humanize(key))}<small class="key">{esc(key)}</small>'


# verdict word -> CSS class; any other word is shown grey
VERDICTS = {"reproduced": "v-reproduced", "answered": "v-answered",
            "not reproduced": "v-not-reproduced", "contradicted": "v-contradicted"}


def verdict_badge(word: str) -> str:
    return f'<span class="verdict {VERDICTS.get(str(word).lower(), "v-other")}">{esc(word)}</span>'


def verdict_table(rows: Iterable[Any]) -> str:
    """The findings first: one row per claim -> (claim, [source,] measured, verdict, why).

    rows: dicts with keys claim, measured, verdict, why and optionally source_value (the form
    metrics.json's "verdicts" list holds; a "source" column appears when any row has one), or
    4-tuples (claim, measured, verdict, why). measured may be a number or text; verdict is one of
    reproduced / not reproduced / contradicted / answered (coloured), any other word grey.
    """
    rows = list(rows)
    src = any(isinstance(r, dict) and "source_value" in r for r in rows)
    body = ['<div class="wide"><table class="verdicts"><tr><th>claim</th>'
            + ("<th>source</th>" if src else "")
            + "<th>measured</th><th>verdict</th><th>why</th></tr>"]
    for r in rows:
        claim, measured, verdict, why = ((r["claim"], r["measured"], r["verdict"], r["why"])
                                         if isinstance(r, dict) else r)
        num = isinstance(measured, (int, float)) and not isinstance(measured, bool)
        m = f'<td class="num">{fmt(measured)}</td>' if num else f"<td>{rich(measured)}</td>"
        s = (f"<td>{rich(r.get('source_value', '') if isinstance(r, dict) else '')}</td>"
             if src else "")
        body.append(f'<tr><td class="claim">{rich(claim)}</td>{s}{m}<td>{verdict_badge(verdict)}</td>'
                    f'<td class="why">{rich(why)}</td></tr>')
    return "\n".join(body) + "</table></div>"


def definitions(defs: dict[str, str], summary: str = "definitions") -> str:
    """Definitions folded away (details/summary): each key's label and its text, shown once."""
    rows = "".join(f"<tr><td>{label(k)}</td><td>{rich(v)}</td></tr>" for k, v in defs.items())
    return details(summary, f"<table><tr><th>quantity</th><th>definition</th></tr>{rows}</table>")


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
    # a header that is a metrics.json key gets its human label, the key below it in small type
    out = ["<table><tr>" + "".join(f"<th>{label(h) if is_key(str(h)) else esc(h)}</th>"
                                   for h in header) + "</tr>"]
    for row in rows:
        cells = []
        for c in row:
            if isinstance(c, (int, float)) and not isinstance(c, bool):
                cells.append(f'<td class="num">{fmt(c)}</td>')
            elif isinstance(c, str) and _PM.fullmatch(c):  # "0.35 ± 0.01" stays on one line
                cells.append(f'<td class="pm">{c}</td>')
            else:
                cells.append(f"<td>{c if raw else rich(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    # a wide table scrolls inside the text column instead of running past it
    return '<div class="wide">' + "\n".join(out) + "</table></div>"


def figure(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{plain(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{rich(caption)}</figcaption></figure>")


def section(title: str, *parts: str) -> str:
    return f"<h2>{esc(title)}</h2>\n" + "\n".join(parts)


def para(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{rich(text)}</p>' if cls else f"<p>{rich(text)}</p>"


def details(summary: str, body: str) -> str:
    return f"<details><summary>{rich(summary)}</summary>{body}</details>"


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
