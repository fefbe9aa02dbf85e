"""`superlens sweep SPEC.toml --out DIR`: grid -> groups -> backend -> table, figures, report.

Each finished group is written at once (groups/<gid>.json, atomically); re-running the same spec into
the same directory skips finished groups, so an interrupted sweep loses nothing it had finished.
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from superlens.config import SweepSpec
from superlens.errors import RunDirError
from superlens.runs import atomic_write_text, base_meta, read_json, write_json
from superlens.sweep.grid import Group, expand, group_points, load_spec


def run_sweep(spec: SweepSpec, out: str | Path, *, backend: str = "local", address: str | None = None,
              workers: int | None = None, force: bool = False, progress: bool = True,
              argv: list[str] | None = None) -> list[dict]:
    from superlens.sweep import backends

    t0 = time.perf_counter()
    points = expand(spec)  # every point validated before anything is written
    groups = group_points(spec.study, points)
    out = Path(out)
    spec_json = spec.model_dump(mode="json")
    if out.exists() and any(out.iterdir()):
        same = (out / "config.json").exists() and read_json(out / "config.json") == spec_json
        if force:
            import shutil

            shutil.rmtree(out)
        elif not same:
            raise RunDirError(f"run directory {out}: exists with another spec (use --force to "
                              "overwrite; the same spec resumes)")
    out.mkdir(parents=True, exist_ok=True)
    from superlens.device import pick_device

    devices = sorted({str(pick_device(p.config.device)) for p in points})
    meta = base_meta(", ".join(devices), "chosen per group (superlens.device.choose_threads)",
                     sorted({p.config.model_dump().get("seed", 0) for p in points}), argv)
    meta.update(kind="sweep", study=spec.study, backend=backend, n_points=len(points),
                n_groups=len(groups))
    write_json(out / "config.json", spec_json)
    write_json(out / "meta.json", meta)
    todo = [g for g in groups if not (out / "groups" / f"{g.gid}.json").exists()]
    if progress:
        print(f"sweep {spec.name}: {len(points)} points in {len(groups)} groups "
              f"({len(groups) - len(todo)} already done), backend {backend}", flush=True)
    options = dict(spec.options)
    options["progress"] = progress
    options["points_dir"] = str((out / "points").resolve())

    def done(g: Group, rows: list[dict]) -> None:
        write_json(out / "groups" / f"{g.gid}.json", {"points": [p.index for p in g.points],
                                                      "rows": rows})
        if progress:
            print(f"  group {g.gid}: {len(rows)} point(s) done", flush=True)

    if backend == "ray":
        backends.run_ray(spec.study, todo, options, done, address, workers)
    else:
        backends.run_local(spec.study, todo, options, done, workers)
    rows = collect(out, groups)
    write_table(out, rows)
    meta.update(status="complete", wall_seconds=time.perf_counter() - t0)
    write_json(out / "meta.json", meta)
    render_sweep_report(out)
    return rows


def collect(out: Path, groups: list[Group]) -> list[dict]:
    rows = []
    for g in groups:
        rows += read_json(out / "groups" / f"{g.gid}.json")["rows"]
    return sorted(rows, key=lambda r: r["point"])


def write_table(out: Path, rows: list[dict]) -> None:
    write_json(out / "table.json", rows)
    cols: list[str] = []
    for r in rows:
        cols += [k for k, v in r.items() if k not in cols and not isinstance(v, (list, dict))]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "table.csv", buf.getvalue())


def render_sweep_report(out: str | Path) -> Path:
    from superlens.report.sweep_report import sweep_report_html

    out = Path(out)
    spec, meta = read_json(out / "config.json"), read_json(out / "meta.json")
    rows = read_json(out / "table.json")
    html = sweep_report_html(spec, meta, rows, out / "figures")
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def run_sweep_cli(ns) -> int:
    spec = load_spec(ns.spec)
    rows = run_sweep(spec, ns.out, backend=ns.backend, address=ns.address, workers=ns.workers,
                     force=ns.force, progress=not ns.quiet)
    print(f"wrote {Path(ns.out) / 'report.html'} ({len(rows)} points)")
    return 0
