"""edgesdk runs [list] | show RUN | compare RUN RUN..."""

from __future__ import annotations

import argparse

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser("runs", help="list, show and compare past profile/deploy runs",
                       description="Runs are recorded under runs/ (--runs-dir, else $EDGESDK_RUNS) and indexed in "
                       "runs/index.sqlite.")
    p.add_argument("--runs-dir", metavar="DIR", help="run records directory (default: $EDGESDK_RUNS, else ./runs)")
    add_json_flag(p)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    listing = actions.add_parser("list", help="recent runs (the default)")
    listing.add_argument("--device", help="only this device")
    listing.add_argument("--model", help="only this model")
    listing.add_argument("--limit", type=int, default=20)
    show = actions.add_parser("show", help="one run's record")
    show.add_argument("run_id")
    compare = actions.add_parser(
        "compare", help="runs side by side, latency and accuracy relative to the first",
        description="The first run is the base. With --fail-on-regression, exits 11 when any later run's p50 "
        "latency, energy per inference or on-device accuracy is worse than the base's by more than the threshold "
        "(relative), for CI pipelines. A run is an id in --runs-dir or a run folder.")
    compare.add_argument("run_ids", nargs="+", metavar="RUN", help="run ids or run folders; the first is the base")
    compare.add_argument("--fail-on-regression", metavar="PCT",
                         help="exit 11 when latency, energy or accuracy got worse by more than PCT (e.g. 5%%)")
    compare.add_argument("--max-accuracy-drop", type=float, metavar="ABS",
                         help="with --fail-on-regression: also fail when accuracy drops by more than ABS (e.g. 0.001)")
    for q in (listing, show, compare):  # also accepted after the action; SUPPRESS keeps the parent's value
        q.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
        q.add_argument("--runs-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def run(args) -> int:
    from ..runs import RunStore

    store = RunStore(args.runs_dir)
    action = args.action or "list"
    if action == "show":
        record = store.get(args.run_id)
        if args.json:
            print_json(record)
        else:
            _table([record], f"run {args.run_id}")
            print(f"files: {record['dir']}")
        return 0
    if action == "compare":
        return _compare(store, args)
    rows = store.list(device=getattr(args, "device", None), model=getattr(args, "model", None),
                      limit=getattr(args, "limit", 20))
    if args.json:
        print_json({"runs": rows})
    else:
        _table(rows, f"runs in {store.root}")
    return 0


def _compare(store, args) -> int:
    from ..errors import RegressionError, UsageError
    from ..regression import compare, parse_threshold

    threshold = parse_threshold(args.fail_on_regression) if args.fail_on_regression else None
    if args.max_accuracy_drop is not None and threshold is None:
        raise UsageError("--max-accuracy-drop needs --fail-on-regression")
    records = [store.record(run) for run in args.run_ids]
    base = records[0]
    base_summary = base.get("summary") or {}
    regressions = []
    for record in records:
        record["p50_vs_first"] = _ratio(record.get("p50_ms"), base.get("p50_ms"))
        record["p90_vs_first"] = _ratio(record.get("p90_ms"), base.get("p90_ms"))
        summary = record.pop("summary", None) or {}
        if threshold is None or record is base:
            continue
        if record["status"] != "ok":
            regressions.append(f"{record['id']} did not finish ({record['status']})")
            continue
        changes = compare(base_summary, summary, threshold, args.max_accuracy_drop)
        record["changes"] = [c.to_json() for c in changes]
        regressions += [f"{record['id']}: {c.describe()}" for c in changes if c.regressed]
    if args.json:
        print_json({"runs": records, "threshold": threshold, "regressions": regressions})
    else:
        _table(records, "runs compared (latency ratios against the first)", ratios=True)
        if threshold is not None:
            _changes(records[1:], threshold)
    if regressions:
        raise RegressionError(f"worse than {base['id']} by more than {threshold * 100:g}%: " + "; ".join(regressions))
    return 0


def _changes(records, threshold: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"against the first run (fails beyond {threshold * 100:g}% worse)")
    for column in ("run", "figure", "base", "new", "worse by", ""):
        table.add_column(column)
    for record in records:
        for change in record.get("changes", []):
            table.add_row(record["id"], change["metric"], f"{change['base']:.6g}", f"{change['new']:.6g}",
                          f"{change['worse_by'] * 100:+.3g}%", "[red]REGRESSED[/]" if change["regressed"] else "ok")
    Console().print(table)


def _ratio(value, base):
    return None if value is None or not base else value / base


def _table(rows, title: str, ratios: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    def num(value, fmt):
        return "-" if value is None else format(value, fmt)

    table = Table(title=title)
    columns = ["run", "status", "device", "model", "recipe", "n", "p50 ms", "p90 ms", "p99 ms", "RSS MB", "cosine"]
    columns += ["p50 x", "p90 x"] if ratios else []
    for column in columns:
        table.add_column(column)
    for r in rows:
        cells = [r["id"], r["status"] if r["status"] != "failed" else f"[red]failed[/]: {r.get('error') or ''}"[:80],
                 r["device"] or "", r["model"] or "", r["recipe"] or "", num(r["n"], "d"), num(r["p50_ms"], ".2f"),
                 num(r["p90_ms"], ".2f"), num(r["p99_ms"], ".2f"), num(r["peak_rss_mb"], ".1f"), num(r["cosine_mean"], ".6f")]
        if ratios:
            cells += [num(r.get("p50_vs_first"), ".3f"), num(r.get("p90_vs_first"), ".3f")]
        table.add_row(*cells)
    Console().print(table)
