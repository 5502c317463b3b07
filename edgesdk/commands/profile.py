"""edgesdk profile ARTIFACT_DIR --device NAME --runs N --warmup N [--json]"""

from __future__ import annotations

from ._common import add_json_flag, positive_int, print_json


def add_device_flags(p) -> None:
    p.add_argument("--devices", metavar="YAML", help="device inventory (default: $EDGESDK_DEVICES, else ./devices.yaml)")
    p.add_argument("--devices-tag", metavar="TAG", help="also every device with this tag in devices.yaml (a fleet: "
                   "all at once, a progress line each, one summary table)")
    p.add_argument("--runs", type=int, default=100, help="timed iterations (default 100)")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations first (default 10)")
    p.add_argument("--budget", type=float, default=None, metavar="SECONDS", help="stop the timed runs after this long")
    p.add_argument("--runs-dir", metavar="DIR", help="where run records go (default: $EDGESDK_RUNS, else ./runs)")
    p.add_argument("--power", action="store_true", help="sample the device's power sensor (its power: in devices.yaml) "
                   "during the runs: idle/mean/peak watts, energy per inference, trace and plot in the run record")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="the runtime's threads on the device (default: the target's)")
    p.add_argument("--wait", type=float, nargs="?", const=float("inf"), default=None, metavar="SECONDS",
                   help="another pipeline holds the device: wait for it (as long as it takes, or SECONDS) instead "
                        "of stopping")
    p.add_argument("--cross", action="store_true", help="push a program built on this host for the device's CPU (a "
                   "compiled backend: c; its target's cross compiler) instead of building it on the device")


def add_parser(sub):
    p = sub.add_parser(
        "profile",
        help="run an artifact on a device: latency, peak memory, on-device accuracy",
        description="Push an artifact directory to a device (skipping files already there), run it with the runtime's "
        "runner and bring back latency statistics, peak RSS and the accuracy of the device's outputs against the "
        "float reference in the manifest. The run is recorded under runs/.",
    )
    p.add_argument("artifact", help="an artifact directory written by 'edgesdk convert'")
    p.add_argument("--device", action="append", default=[], help="a device in devices.yaml (default: local); "
                   "repeat it to run on several devices at once")
    add_device_flags(p)
    add_json_flag(p)
    return p


def fleet_devices(args):
    """The devices of a fleet run (several --device, or --devices-tag), else None."""
    if len(args.device) < 2 and not args.devices_tag:
        return None
    from ..devices.fleet import select
    from ..devices.inventory import load_inventory

    return select(load_inventory(args.devices), args.device, args.devices_tag)


def profile_options(args) -> dict:
    return {"runs": args.runs, "warmup": args.warmup, "budget_s": args.budget, "runs_dir": args.runs_dir,
            "power": args.power, "cross": args.cross, "threads": args.threads, "wait": args.wait}


def run(args) -> int:
    from ..devices.api import profile, profile_fleet

    fleet = fleet_devices(args)
    if fleet is not None:
        from ._profile_output import report_fleet

        return report_fleet(None, profile_fleet(args.artifact, fleet, **profile_options(args)), args.json)
    result = profile(args.artifact, device=(args.device or ["local"])[0], devices=args.devices, **profile_options(args))
    if args.json:
        print_json(result.to_json())
        return 0
    from ._profile_output import print_profile

    print_profile(result)
    return 0
