"""edgesdk report RUN_OR_ARTIFACT... -o report.html"""

from __future__ import annotations

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser(
        "report", help="one self-contained HTML page of runs and artifacts (latency, power, Pareto chart)",
        description="Writes one HTML file that needs no network to view: per run the latency histogram and CDF "
        "(p50/p90/p99), the power trace and energy per inference where measured, and the device facts; across "
        "sources a size / accuracy / latency Pareto chart of recipes and targets. Sources are run folders, run ids "
        "(in --runs-dir) or artifact folders (size and host accuracy only).")
    p.add_argument("sources", nargs="+", metavar="RUN_OR_ARTIFACT", help="a run folder or id, or an artifact folder")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file to write (default: report.html)")
    p.add_argument("--runs-dir", metavar="DIR", help="where run ids are looked up (default: $EDGESDK_RUNS, else ./runs)")
    add_json_flag(p)
    return p


def run(args) -> int:
    from ..report import build_report

    out = build_report(args.sources, args.output, args.runs_dir)
    if args.json:
        print_json({"report": str(out), "sources": args.sources})
    else:
        print(f"report: {out} ({len(args.sources)} source{'s' if len(args.sources) != 1 else ''})")
    return 0
