"""edgesdk devices list | check [NAME] | emulate [BOARD] [--name N] [--stop | --status]"""

from __future__ import annotations

from ._common import add_json_flag, print_json


def add_parser(sub):
    p = sub.add_parser("devices", help="list the device inventory or check devices",
                       description="Devices come from devices.yaml (--devices, else $EDGESDK_DEVICES, else ./devices.yaml).")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the devices in the inventory")
    check = actions.add_parser("check", help="reachability, host key, arch, python and runtimes of one or every device")
    check.add_argument("name", nargs="?", help="one device (default: all)")
    emulate = actions.add_parser(
        "emulate", help="bring up an emulated arm64 board (qemu) with its own sshd and add it to devices.yaml",
        description="An arm64 Debian root file system (built once with mmdebstrap and cached, with the runtimes' "
                    "aarch64 wheels) run by qemu-user, served by an sshd in its own network namespace. Needs root. "
                    "Its latencies are qemu's on this machine, not the board's: reports say it is emulated.")
    emulate.add_argument("board", nargs="?", default="rpi4", help="the board to emulate: rpi4 (default) or rpi5")
    emulate.add_argument("--name", default=None, help="its device name in devices.yaml (default: BOARD-emu)")
    which = emulate.add_mutually_exclusive_group()
    which.add_argument("--stop", action="store_true", help="take the board down (its disk and keys are kept)")
    which.add_argument("--status", action="store_true", help="the emulated boards of this machine and their state")
    which.add_argument("--prepare", action="store_true",
                       help="only build (and cache) the board's root file system, a few minutes the first time")
    for q in (listing, check, emulate):
        q.add_argument("--devices", metavar="YAML", help="device inventory file")
        add_json_flag(q)
    return p


def run(args) -> int:
    from ..devices.inventory import load_inventory

    if args.action == "emulate":
        return _emulate(args)
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


def _emulate(args) -> int:
    from .. import progress
    from ..devices.inventory import inventory_path
    from ..emulate import board as boards
    from ..emulate.inventory import add_to_inventory
    from ..emulate.profiles import profile

    if args.status:
        rows = [{"name": s.name, "board": s.board, "address": s.address, "running": boards.running(s)}
                for s in boards.all_states()]
        if args.json:
            print_json({"boards": rows})
        else:
            for row in rows or [{"name": "(no emulated boards)"}]:
                state = "" if "board" not in row else f"  {row['board']}  {row['address']}  " + (
                    "running" if row["running"] else "stopped")
                print(f"{row['name']}{state}")
        return 0
    board = profile(args.board)
    if args.prepare:
        from ..emulate.rootfs import cache_root, ensure_rootfs

        cache_root().mkdir(parents=True, exist_ok=True)
        root = ensure_rootfs(board, cache_root() / "build.log")
        print_json({"rootfs": str(root)}) if args.json else print(f"the {board.name} root file system is ready: {root}")
        return 0
    name = args.name or f"{board.name}-emu"
    if args.stop:
        state = boards.stop(name)
        print_json({"name": name, "stopped": True}) if args.json else print(f"stopped the emulated board '{name}'")
        return 0
    from ..devices.inventory import check_name
    from ..errors import UsageError

    try:
        check_name(name)  # before anything is built
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    path, _ = inventory_path(args.devices)
    with progress.step(f"bringing up the emulated {board.name} '{name}'"):
        state = boards.start(name, board)
    added = add_to_inventory(path, state, board)
    if args.json:
        print_json({"name": name, "board": board.name, "target": board.target, "address": state.address,
                    "devices_file": str(path), "added": added})
    else:
        print(f"emulated {board.description} '{name}' is up at root@{state.address} "
              f"({'added to' if added else 'already in'} {path}).\n"
              f"Try: edgesdk devices check {name}; edgesdk deploy examples/minilm_model.py --target {board.target} "
              f"--device {name}. It runs under qemu: its latencies are not a {board.name}'s.")
    return 0
