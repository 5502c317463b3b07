"""An emulated board's entry in devices.yaml: appended as text (the file's comments and order stay), the
result parsed before it is written, and an existing entry of that name left alone when it is this board."""

from __future__ import annotations

from pathlib import Path

from ..devices.inventory import parse_inventory
from ..errors import EmulatorError
from .board import BoardState, state_dir
from .profiles import BoardProfile

HEADER = "devices:\n"


def entry(state: BoardState, board: BoardProfile) -> dict:
    home = state_dir(state.name)
    return {"target": board.target, "host": state.address, "port": 22, "user": "root",
            "key": str(home / "client_ed25519"), "known_hosts": str(home / "known_hosts"), "python": "/usr/bin/python3",
            "emulated": True, "tags": ["emulated"]}


def add_to_inventory(path: Path, state: BoardState, board: BoardProfile) -> bool:
    """Add the board to the devices file (created if absent); False when it was there already."""
    settings = entry(state, board)
    text = path.read_text() if path.exists() else HEADER
    inventory = parse_inventory(text, path)
    if state.name in inventory.devices:
        present = inventory.devices[state.name].model_dump(exclude_defaults=True, exclude={"name"})
        if all(present.get(k) == v for k, v in settings.items() if k != "port"):
            return False
        raise EmulatorError(f"{path} already has a device '{state.name}' that is not this emulated board; pick "
                            "another --name or remove that entry")
    indent = _entry_indent(text)
    lines = [f"{indent}{state.name}:  # emulated {board.description}: qemu on this machine, not a board's timings"]
    for key, value in settings.items():
        shown = "[" + ", ".join(value) + "]" if isinstance(value, list) else str(value).lower() if isinstance(value, bool) else value
        lines.append(f"{indent}  {key}: {shown}")
    updated = text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"
    if parse_inventory(updated, path).devices[state.name].host != state.address:  # the append landed elsewhere
        raise EmulatorError(f"could not add '{state.name}' to {path} (its 'devices:' mapping is not the file's last "
                            "block); add it by hand:\n" + "\n".join(lines))
    path.write_text(updated)
    return True


def _entry_indent(text: str) -> str:
    """The indentation of the first device in the file (two spaces if it has none)."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    for key, value in (root.value if isinstance(root, yaml.MappingNode) else []):
        if key.value == "devices" and isinstance(value, yaml.MappingNode) and value.value and not value.flow_style:
            return " " * value.value[0][0].start_mark.column
    if isinstance(root, yaml.MappingNode) and any(k.value == "devices" and isinstance(v, yaml.MappingNode) and
                                                  v.value for k, v in root.value):
        raise EmulatorError("the devices file writes its 'devices' mapping in flow style ({...}); add the board by hand")
    return "  "
