"""Every report renders as readable text: rendered from tiny runs (toy, active on synthetic data, a
tiny TMS sweep), no page shows raw Markdown backticks, f-string leftovers ({name}), or a raw
metrics.json key where a reader expects words (keys appear only in code type or small type)."""
import json
import re

import pytest

from superlens.cli import main
from superlens.report.html import is_key, label, rich, table, verdict_table

_HIDDEN = re.compile(r'(?s)<style>.*?</style>|<pre>.*?</pre>|<code>.*?</code>|<title>.*?</title>'
                     r'|<small class="key">.*?</small>|<img [^>]*>')
_FSTRING = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?(?:[:!][^{}]*)?\}")


def visible_text(html: str) -> str:
    """What a reader sees as words: tags, code, small-type keys and embedded images removed."""
    return re.sub(r"(?s)<[^>]+>", " ", _HIDDEN.sub(" ", html))


def page_problems(html: str) -> list[str]:
    text = visible_text(html)
    out = []
    if "`" in text:
        i = text.index("`")
        out.append(f"raw backtick: ...{text[max(0, i - 60):i + 60]}...")
    out += [f"template leftover {m}" for m in _FSTRING.findall(text)]
    out += [f"raw key {t}" for t in re.findall(r"[a-z][a-z0-9_]*_[a-z0-9_]+", text) if is_key(t)]
    return out


def test_page_problems_catches_each_defect():
    assert page_problems("<p>`x`</p>") and page_problems("<p>value {gain_mean:.3f}</p>")
    assert page_problems("<td>l2_trained_kept_gain_min</td>")
    assert not page_problems(f"<td>{label('l2_trained_kept_gain_min')}</td><p>{rich('`a_b` y_i')}</p>")
    assert not page_problems("<p>W_eff, sum_j, x86_64, {1/(q−1)}</p>")


def test_helpers_render_text():
    assert rich("the `<key>_std` is its std") == "the <code>&lt;key&gt;_std</code> is its std"
    assert "<code>mse_active_mean</code>" in rich("mean of mse_active_mean")
    html = table(["n_features", "loss"], [["a", 1.5]])
    assert '<small class="key">n_features</small>' in html and "<th>loss</th>" in html
    v = verdict_table([{"claim": "gain ≈ 0.43", "measured": 0.389, "verdict": "not reproduced",
                        "why": "0.43 is `W_eff`'s diagonal"}, ("L4 8.5×", "3.16×", "contradicted", "")])
    assert v.count("<tr>") == 3 and "v-not-reproduced" in v and "v-contradicted" in v
    assert "<code>W_eff</code>" in v and not page_problems(v)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    d = tmp_path_factory.mktemp("pages")
    assert main(["toy", "--out", str(d / "toy"), "--n-features", "12", "--n-hidden", "4", "--steps",
                 "30", "--batch-size", "64", "--seeds", "2", "--eval-samples", "2000", "--quiet"]) == 0
    assert main(["active", "--out", str(d / "active"), "--preset", "synthetic", "--epochs", "1",
                 "--strategies", "random", "--quiet"]) == 0
    spec = d / "tms.toml"
    spec.write_text('name = "tiny"\nstudy = "tms"\n[base]\nn_features = 5\nn_hidden = 2\nsteps = 50\n'
                    "[axes]\np = [0.05, 1.0]\n")
    assert main(["sweep", str(spec), "--out", str(d / "sweep"), "--quiet"]) == 0
    # a toy sweep with no eval_samples: each point's evaluation set is sized from its p
    spec = d / "toy.toml"
    spec.write_text('name = "tiny toy"\nstudy = "toy"\n[base]\nn_features = 8\nn_hidden = 2\n'
                    "steps = 20\nbatch_size = 32\n[axes]\np = [0.01, 0.5]\n")
    assert main(["sweep", str(spec), "--out", str(d / "toy_sweep"), "--quiet"]) == 0
    spec = d / "active.toml"
    spec.write_text("study = 'active'\n[base]\npreset = 'synthetic'\nepochs = 1\nrounds = 1\n"
                    "[axes]\nstrategy = ['random', 'entropy']\n")
    assert main(["sweep", str(spec), "--out", str(d / "active_sweep"), "--quiet"]) == 0
    pages = {k: (d / k / "report.html").read_text()
             for k in ("toy", "active", "sweep", "toy_sweep", "active_sweep")}
    pages["active_config"] = json.loads((d / "active" / "config.json").read_text())
    pages["toy_metrics"] = json.loads((d / "toy" / "metrics.json").read_text())
    pages["toy_sweep_rows"] = json.loads((d / "toy_sweep" / "table.json").read_text())
    pages["tms_points"] = [json.loads(f.read_text())
                           for f in sorted((d / "sweep" / "points").glob("*/metrics.json"))]
    return pages


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["toy", "active", "sweep", "toy_sweep", "active_sweep"])
def test_report_reads_as_text(pages, kind):
    assert page_problems(pages[kind]) == []


def _first_section(html: str) -> str:
    return re.search(r"<h2>(.*?)</h2>", html).group(1)


@pytest.mark.slow
def test_toy_report_opens_with_its_verdicts(pages):
    """The first section is the verdict table, and metrics.json holds the same rows."""
    html, m = pages["toy"], pages["toy_metrics"]
    assert _first_section(html).startswith("Verdicts")
    assert html.index('class="verdicts"') < html.index("<h2>What ran")
    rows = m["verdicts"]
    assert rows and all(set(r) == {"claim", "source_value", "measured", "verdict", "why"} for r in rows)
    # a 12 -> 4 run is not the source's setting: its numbers are not comparable, questions answered
    assert {r["verdict"] for r in rows} >= {"not comparable", "answered"}
    for r in rows:  # every row is on the page, in order
        assert rich(r["claim"]) in html
    assert html.index(rich(rows[0]["claim"])) < html.index(rich(rows[-1]["claim"]))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sweep", "toy_sweep"])
def test_sweep_reports_open_with_the_phase_summary(pages, kind):
    html = pages[kind]
    assert _first_section(html) == "Phase summary"
    assert "points agreeing" in html and html.index("Phase summary") < html.index("What ran")
    assert "symbols used on this page" in html


@pytest.mark.slow
def test_toy_sweep_eval_samples_adapt_to_p(pages):
    from superlens.studies.toy import MIN_EVAL_SAMPLES
    from superlens.toy.theory import eval_samples_for

    rows = {r["p"]: r for r in pages["toy_sweep_rows"]}
    assert rows[0.5]["eval_samples"] == MIN_EVAL_SAMPLES
    assert rows[0.01]["eval_samples"] == eval_samples_for(0.01, 8) > MIN_EVAL_SAMPLES
    assert f"{MIN_EVAL_SAMPLES:,}–{rows[0.01]['eval_samples']:,} samples" in pages["toy_sweep"]


@pytest.mark.slow
def test_active_config_is_resolved(pages):
    """The active report's resolved config shows what ran: no "auto" device, amp only on CUDA."""
    cfg = pages["active_config"]
    assert cfg["device"] != "auto" and cfg["threads"] >= 1
    assert cfg["amp"] is cfg["device"].startswith("cuda")
    assert '&quot;device&quot;: &quot;auto&quot;' not in pages["active"]


def test_geometry_answer_names_the_nearer_reference():
    from superlens.report.toy_report import geometry_answer

    base = {"geometry_max_abs_cos_random": 0.9, "geometry_max_abs_cos_equiangular": 0.47,
            "geometry_spectrum_cv_random": 0.29, "geometry_spectrum_cv_equiangular": 0.03}
    assert "like random directions" in geometry_answer(
        {**base, "geometry_max_abs_cos": 0.91, "geometry_spectrum_cv": 0.27})
    assert "like a near-equiangular frame" in geometry_answer(
        {**base, "geometry_max_abs_cos": 0.5, "geometry_spectrum_cv": 0.05})
    assert "between" in geometry_answer({**base, "geometry_max_abs_cos": 0.5, "geometry_spectrum_cv": 0.27})
    assert geometry_answer({}) == ""


@pytest.mark.slow
def test_tms_sweep_has_one_definition_of_represented(pages):
    """Geometry classes come from W with the phase's norm threshold: a feature is named "not
    represented" exactly when it is not counted in n_represented (the figure titles' count)."""
    assert pages["tms_points"]
    for m in pages["tms_points"]:
        named = sum(c != "0: not represented" for c in m["geometry_classes"])
        assert named == m["n_represented"]
        assert m["n_not_represented"] == m["n_features"] - m["n_represented"]


def test_phase_regions_merge_neighbours_and_pick():
    from superlens.report.sweep_report import phase_regions

    def r(h, p, phase, seed=0, loss=1.0):
        return {"n_hidden": h, "p": p, "phase": phase, "seed": seed, "loss": loss}

    rows = [r(5, 0.01, "a"), r(5, 0.1, "a"), r(5, 1.0, "b"), r(5, 0.03, "a"),
            r(10, 0.01, "b"), r(10, 0.01, "b", 1), r(10, 0.01, "a", 2, loss=0.1)]
    regions = phase_regions(rows, "p", ["n_hidden"])
    got = [(g["by"]["n_hidden"], g["lo"], g["hi"], g["phase"], g["cells"], g["agree"], g["seeds"])
           for g in regions]
    assert got == [(5, 0.01, 0.1, "a", 3, 3, 3), (5, 1.0, 1.0, "b", 1, 1, 1),
                   (10, 0.01, 0.01, "b", 1, 2, 3)]
    # the best-trained seed decides instead of the majority
    best = phase_regions(rows, "p", ["n_hidden"], pick="min_loss")
    assert best[-1]["phase"] == "a" and best[-1]["agree"] == 1


@pytest.mark.slow
def test_active_sweep_opens_with_its_strategies_and_the_control(pages):
    html = pages["active_sweep"]
    assert _first_section(html).startswith("Strategies")
    assert "random strategy at the same number of labels is the control" in html
