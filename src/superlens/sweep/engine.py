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
from superlens.errors import ConfigError, RunDirError
from superlens.runs import atomic_write_text, base_meta, read_json, write_json
from superlens.sweep.grid import Group, expand, group_points, load_spec


def run_sweep(spec: SweepSpec, out: str | Path, *, backend: str = "local", address: str | None = None,
              workers: int | None = None, force: bool = False, progress: bool = True,
              argv: list[str] | None = None) -> list[dict]:
    from superlens.sweep import backends

    t0 = time.perf_counter()
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend = {backend!r}: expected local or ray")
    if address and backend != "ray":
        raise ConfigError(f"--address {address}: only used with --backend ray")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be >= 1")
    points = expand(spec)  # every point validated before anything is written
    groups = group_points(spec.study, points)
    out = Path(out)
    spec_json = spec.model_dump(mode="json")
    if out.exists() and not out.is_dir():
        raise RunDirError(f"run directory {out}: exists and is not a directory")
    fresh = force or not (out.exists() and any(out.iterdir()))
    if not fresh:
        same = (out / "config.json").exists() and read_json(out / "config.json") == spec_json
        if not same:
            raise RunDirError(f"run directory {out}: exists with another spec (use --force to "
                              "overwrite; the same spec resumes)")
    from superlens.device import pick_device

    devices = sorted({str(pick_device(p.config.device)) for p in points})
    # connect to Ray before anything is written: a bad address leaves no directory behind
    session = backends.RaySession(address, workers) if backend == "ray" else None
    try:
        if force and out.exists():
            import shutil

            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        meta = base_meta(", ".join(devices), "per group, capped at each worker's core budget "
                         "(groups/<gid>.json: threads, thread_budget)",
                         sorted({p.config.model_dump().get("seed", 0) for p in points}), argv)
        meta.update(kind="sweep", study=spec.study, backend=backend, n_points=len(points),
                    n_groups=len(groups), status="running")
        write_json(out / "config.json", spec_json)
        write_json(out / "meta.json", meta)
        todo = [g for g in groups if not (out / "groups" / f"{g.gid}.json").exists()]
        if progress:
            print(f"sweep {spec.name}: {len(points)} points in {len(groups)} groups "
                  f"({len(groups) - len(todo)} already done), backend {backend}", flush=True)
        options = spec.options.model_dump()
        options["progress"] = progress
        options["runs_dir"] = str((out / "runs").resolve())

        def done(g: Group, res: dict) -> None:
            # per-point files first: a group file on disk means its points are complete
            for idx, m in res["point_metrics"].items():
                write_json(out / "points" / point_id(int(idx)) / "metrics.json", m)
            write_json(out / "groups" / f"{g.gid}.json",
                       {"points": [p.index for p in g.points], "rows": res["rows"],
                        "threads": res.get("threads"), "thread_budget": res.get("thread_budget")})
            if progress:
                print(f"  group {g.gid}: {len(res['rows'])} point(s) done", flush=True)

        try:
            if session is not None:
                backends.run_ray(spec.study, todo, options, done, session)
            else:
                backends.run_local(spec.study, todo, options, done, workers)
        except backends.GroupFailed as e:
            meta.update(status="incomplete", error=str(e))
            write_json(out / "meta.json", meta)
            raise
    finally:
        if session is not None:
            session.close()
    rows = collect(out, groups)
    write_table(out, rows)
    meta.update(status="complete", wall_seconds=time.perf_counter() - t0)
    write_json(out / "meta.json", meta)
    render_sweep_report(out)
    return rows


def point_id(index: int) -> str:
    return f"point{index:04d}"


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
    from superlens.studies import sweep_study

    out = Path(out)
    spec, meta = read_json(out / "config.json"), read_json(out / "meta.json")
    rows = read_json(out / "table.json")
    html = sweep_report_html(spec, meta, rows, out / "figures", sweep_study(spec["study"]))
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def run_sweep_cli(ns) -> int:
    spec = load_spec(ns.spec)
    rows = run_sweep(spec, ns.out, backend=ns.backend, address=ns.address, workers=ns.workers,
                     force=ns.force, progress=not ns.quiet)
    print(f"wrote {Path(ns.out) / 'report.html'} ({len(rows)} points)")
    return 0
