"""edgesdk devices list | check [NAME]"""

from __future__ import annotations

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser("devices", help="list the device inventory or check devices",
                       description="Devices come from devices.yaml (--devices, else $EDGESDK_DEVICES, else ./devices.yaml).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the devices in the inventory")
    check = actions.add_parser("check", help="reachability, host key, arch, python and runtimes of one or every device")
    check.add_argument("name", nargs="?", help="one device (default: all)")
    for q in (listing, check):
        q.add_argument("--devices", metavar="YAML", help="device inventory file")
        add_json_flag(q)
    return p


def run(args) -> int:
    from ..devices.inventory import load_inventory

    inventory = load_inventory(args.devices)
    if args.action == "list":
        return _list(inventory, args.json)
    devices = [inventory.get(args.name)] if args.name else list(inventory.devices.values())
    return _check(devices, args.json)


def _list(inventory, as_json: bool) -> int:
    rows = [{"name": d.name, "target": d.target, "transport": d.transport, "address": d.address,
             "host_key_policy": d.host_key_policy if d.transport == "ssh" else None, "workdir": d.workdir,
             "python": d.interpreter, "tags": d.tags} for d in inventory.devices.values()]
    if as_json:
        print_json({"inventory": str(inventory.path) if inventory.path else None, "devices": rows})
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"devices ({inventory.path or 'no devices.yaml: built-in local device only'})")
    for column in ("name", "target", "transport", "address", "python", "tags"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["target"], row["transport"], row["address"], row["python"], ", ".join(row["tags"]))
    Console().print(table)
    return 0


def _check(devices, as_json: bool) -> int:
    from ..devices.check import check_device

    reports = [check_device(d) for d in devices]
    if as_json:
        print_json({"devices": reports})
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="device check")
        for column in ("device", "target", "reachable", "host key", "arch", "python", "runtimes", "power", "status"):
            table.add_column(column)
        for r in reports:
            runtimes = ", ".join(f"{k} {v or 'MISSING'}" for k, v in (r.get("runtimes") or {}).items())
            status = "[green]ok[/]" if r["ok"] else "[red]FAILED[/]"
            power = r.get("power")
            power_cell = "-" if power is None else f"{power['sensor']} {'ok' if power['ok'] else 'FAILED'}"
            table.add_row(r["device"], r["target"], _yes(r.get("reachable")), r.get("host_key", "-"), r.get("arch", "-"),
                          r.get("python", "-"), runtimes or "-", power_cell, status)
        console = Console()
        console.print(table)
        for r in reports:
            if not r["ok"]:
                problem = r.get("error") or (r.get("power") or {}).get("error", "failed")
                console.print(f"{r['device']}: {problem}", style="red", soft_wrap=True, markup=False, highlight=False)
    return 0 if all(r["ok"] for r in reports) else 7


def _yes(value) -> str:
    return "-" if value is None else ("yes" if value else "no")
