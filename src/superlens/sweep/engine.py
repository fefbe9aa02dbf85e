"""`superlens sweep SPEC.toml --out DIR`: grid -> groups -> backend -> table, figures, report.

Each finished group is written at once (groups/<gid>.json, atomically); re-running the same spec into
the same directory skips finished groups, so an interrupted sweep loses nothing it had finished.
"""
from __future__ import annotations

import contextlib
import csv
import io
import sys
import time
from pathlib import Path

from superlens.config import SweepSpec
from superlens.errors import ConfigError, RunDirError
from superlens.runs import atomic_write_text, base_meta, page_meta, read_json, write_json
from superlens.sweep.grid import expand, group_points, load_spec
from superlens.sweep.points import Group
from superlens.studies import sweep_study


def run_sweep(spec: SweepSpec, out: str | Path, *, backend: str = "local", address: str | None = None,
              workers: int | None = None, force: bool = False, progress: bool = True,
              argv: list[str] | None = None, inputs: tuple = (), verbose: bool = False) -> list[dict]:
    """Run every group of ``spec`` not already finished in ``out``; returns the table's rows.

    Every check runs before the first write; the run's lock is held throughout. A fresh sweep
    writes ``out`` in place (re-running the same spec resumes it); ``force`` over an existing sweep
    builds the new one beside it and swaps it in only when complete. SIGTERM stops like Ctrl-C:
    workers are stopped, meta.json says "interrupted", and the CLI exits 130."""
    from superlens.runs import RunLock, check_out, check_run_dir, open_run_dir, sigterm_as_interrupt
    from superlens.sweep import backends

    t0 = time.perf_counter()
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend = {backend!r}: expected local or ray")
    if address and backend != "ray":
        raise ConfigError(f"--address {address}: only used with --backend ray")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: must be >= 1")
    out = check_out(out, force=force, inputs=inputs)
    points = expand(spec)  # every point validated before anything is written
    groups = group_points(spec.study, points)
    sweep_study(spec.study).check_sizes(groups)
    check_out(out, force=force, inputs=(*inputs, *_point_inputs(points)))
    spec_json = spec.model_dump(mode="json")
    _check_same_spec(out, spec_json, force)
    from superlens.device import pick_device

    devices = sorted({str(pick_device(p.config.device)) for p in points})
    with RunLock(out):
        _check_same_spec(out, spec_json, force)  # again, now that no one else can write it
        check_run_dir(out, True)
        # connect to Ray before anything is written: a bad address leaves no directory behind
        session = backends.RaySession(address, workers, verbose=verbose) if backend == "ray" else None
        try:
            # after ray.init, which installs its own SIGTERM handler
            with open_run_dir(out, force=force) as work, sigterm_as_interrupt():
                rows = _run_into(spec, work, points, groups, session, backend, workers, progress,
                                 argv, devices, spec_json, t0)
        finally:
            if session is not None:
                session.close()
    return rows


def _run_into(spec: SweepSpec, out: Path, points: list, groups: list[Group], session, backend: str,
              workers: int | None, progress: bool, argv: list[str] | None, devices: list[str],
              spec_json: dict, t0: float) -> list[dict]:
    from superlens.sweep import backends

    meta = base_meta(", ".join(devices), "per group, capped at each worker's core budget "
                     "(groups/<gid>.json: threads, thread_budget)",
                     sorted({p.config.model_dump().get("seed", 0) for p in points}), argv)
    meta.update(kind="sweep", study=spec.study, backend=backend, n_points=len(points),
                n_groups=len(groups), status="running")
    # the costliest groups start first (longest first): a long group started last would keep one
    # worker busy while the others wait (the result is the same in any order)
    cost = sweep_study(spec.study).group_cost
    todo = sorted((g for g in groups if not _group_done(out, g)), key=lambda g: -cost(g))
    # a resumed sweep keeps the sessions before it: wall_seconds is the total over all of them
    sessions = _earlier_sessions(out)
    meta["sessions"] = sessions + [{"started_at": meta["started_at"], "git_commit": meta["git_commit"],
                                    "groups_run": len(todo)}]
    earlier = sum(float(x.get("wall_seconds") or 0.0) for x in sessions)

    def wall() -> dict:
        now = time.perf_counter() - t0
        meta["sessions"][-1]["wall_seconds"] = now
        return {"wall_seconds": earlier + now}

    write_json(out / "config.json", spec_json)
    write_json(out / "meta.json", meta)
    if progress:
        gs = "group" if len(groups) == 1 else "groups"
        print(f"sweep {spec.name}: {len(points)} points in {len(groups)} {gs} "
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
        meta.update(status="incomplete", error=str(e), **wall())
        write_json(out / "meta.json", meta)
        raise
    except KeyboardInterrupt:
        meta.update(status="interrupted", **wall())
        with contextlib.suppress(OSError):  # a full disk must not hide the interruption
            write_json(out / "meta.json", meta)
        raise
    rows = collect(out, groups)
    write_table(out, rows)
    meta.update(**wall())
    write_json(out / "meta.json", meta)
    render_sweep_report(out, status="complete")
    meta["status"] = "complete"  # set last: a sweep whose report failed is not complete
    write_json(out / "meta.json", meta)
    return rows


def _earlier_sessions(out: Path) -> list[dict]:
    """The sessions recorded in an existing sweep's meta.json (a sweep written before sessions were
    recorded counts as one, with its wall_seconds); [] for a new sweep or an unreadable meta."""
    try:
        old = read_json(out / "meta.json")
    except Exception:  # noqa: BLE001 - no meta (a new sweep) or a broken one: nothing to carry
        return []
    if isinstance(old.get("sessions"), list):
        return [x for x in old["sessions"] if isinstance(x, dict)]
    return [{"started_at": old.get("started_at"), "git_commit": old.get("git_commit"),
             "wall_seconds": old.get("wall_seconds")}] if old.get("started_at") else []


def _check_same_spec(out: Path, spec_json: dict, force: bool) -> None:
    """A non-empty ``out`` is resumed only by the same spec (or replaced with ``force``)."""
    if force or not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / "meta.json").is_file():
        from superlens.runs import existing_run_hint

        raise RunDirError(f"run directory {out}: {existing_run_hint(out)}")
    same = (out / "config.json").is_file() and read_json(out / "config.json") == spec_json
    if not same:
        raise RunDirError(f"run directory {out}: exists with another spec (use --force to "
                          "overwrite; the same spec resumes)")


def _point_inputs(points: list) -> set[str]:
    """Folders a sweep reads (data sets, weights): --out must not hold them."""
    return {str(v) for p in points for k in ("data_dir", "weights_path")
            if (v := getattr(p.config, k, None))}


def _group_done(out: Path, g: Group) -> bool:
    """A group whose file is on disk and well formed is done; a corrupt one is run again."""
    from superlens.readers import read_group

    try:
        return read_group(out / "groups" / f"{g.gid}.json", [p.index for p in g.points]) is not None
    except RunDirError as e:
        print(f"superlens: {e}; running group {g.gid} again", file=sys.stderr, flush=True)
        return False


def point_id(index: int) -> str:
    return f"point{index:04d}"


def collect(out: Path, groups: list[Group]) -> list[dict]:
    from superlens.readers import read_group

    rows = []
    for g in groups:
        path = out / "groups" / f"{g.gid}.json"
        got = read_group(path, [p.index for p in g.points])
        if got is None:
            raise RunDirError(f"{path}: not found (the sweep is incomplete; re-run it to resume)")
        rows += got["rows"]
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


def render_sweep_report(out: str | Path, status: str | None = None) -> Path:
    """(Re)write report.html from a sweep directory. An unfinished sweep (no table.json yet) is
    reported from the groups that finished. status: the run status the page shows instead of
    meta.json's (runs.page_meta)."""
    from superlens.readers import file_contents, read_meta, read_object, read_rows
    from superlens.report.sweep_report import sweep_report_html


    out = Path(out)
    spec = read_object(out / "config.json", {"study": str, "axes": dict})
    meta = page_meta(read_meta(out), status)
    table = out / "table.json"
    if table.exists() or meta.get("status") == "complete":
        rows = read_rows(table, {"point": int})
    else:
        rows, table = _finished_rows(out), out / "groups"
    with file_contents(table, "not this sweep's table"):
        html = sweep_report_html(spec, meta, rows, out / "figures", sweep_study(spec["study"]))
    atomic_write_text(out / "report.html", html)
    return out / "report.html"


def _finished_rows(out: Path) -> list[dict]:
    """The rows of every well-formed group file of an unfinished sweep, by point."""
    from superlens.readers import read_object

    rows: list[dict] = []
    for f in sorted((out / "groups").glob("*.json")):
        try:
            g = read_object(f, {"rows": list})
            if not all(isinstance(r, dict) and isinstance(r.get("point"), int) for r in g["rows"]):
                raise RunDirError(f"{f}: a row without its point")
        except RunDirError as e:
            print(f"superlens: {e}; left out of the report", file=sys.stderr)
            continue
        rows += g["rows"]
    if not rows:
        raise RunDirError(f"run directory {out}: no finished group yet; nothing to report")
    return sorted(rows, key=lambda r: r["point"])


def run_sweep_cli(ns) -> int:
    from superlens.runs import check_out

    check_out(ns.out, force=ns.force, inputs=(ns.spec,))
    spec = load_spec(ns.spec)
    rows = run_sweep(spec, ns.out, backend=ns.backend, address=ns.address, workers=ns.workers,
                     force=ns.force, progress=not ns.quiet, inputs=(ns.spec,),
                     verbose=getattr(ns, "verbose", False))
    print(f"wrote {Path(ns.out) / 'report.html'} ({len(rows)} points)")
    return 0
