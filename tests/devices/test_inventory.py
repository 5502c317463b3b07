"""devices.yaml: the issue's keys, defaults, the built-in local device, and errors that name line and key."""

from __future__ import annotations

import sys
import textwrap

import pytest

from edgesdk.devices.inventory import LOCAL, load_inventory, parse_inventory
from edgesdk.errors import InventoryError

ISSUE_EXAMPLE = textwrap.dedent("""\
    devices:
      pi-lab:
        target: rpi4              # a file in targets/
        host: 192.0.2.10
        port: 22                  # default 22
        user: pi
        key: ~/.ssh/id_ed25519    # or ssh-agent when absent
        known_hosts: ~/.ssh/known_hosts   # default
        host_key_policy: strict   # strict (default: unknown or changed key refused) | accept-new
        workdir: /tmp/edgesdk     # where artifacts and runs live on the device
        python: python3           # interpreter for the runner on the device
        tags: [lab, cortex-a72]
      local:
        target: host
        transport: local          # this machine, no SSH: the default device when none is named
    """)


def test_the_issue_example_parses():
    inventory = parse_inventory(ISSUE_EXAMPLE)
    pi = inventory.get("pi-lab")
    assert (pi.target, pi.host, pi.port, pi.user, pi.host_key_policy, pi.tags) == (
        "rpi4", "192.0.2.10", 22, "pi", "strict", ["lab", "cortex-a72"])
    assert pi.transport == "ssh" and pi.interpreter == "python3"
    assert inventory.get("local").transport == "local"
    assert inventory.for_target("rpi4").name == "pi-lab"
    assert inventory.for_target("host").name == "local"


def test_defaults():
    device = parse_inventory("devices:\n  b:\n    target: rpi5\n    host: b.lan\n").get("b")
    assert (device.port, device.known_hosts, device.host_key_policy, device.workdir, device.key) == (
        22, "~/.ssh/known_hosts", "strict", "~/.cache/edgesdk", None)
    assert device.interpreter == "python3"


def test_builtin_local_device_when_absent():
    inventory = parse_inventory("devices:\n  b:\n    target: rpi5\n    host: b.lan\n")
    local = inventory.get(LOCAL)
    assert local.transport == "local" and local.target == "host" and local.interpreter == sys.executable


def test_no_file_means_only_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGESDK_DEVICES", raising=False)
    inventory = load_inventory()
    assert list(inventory.devices) == [LOCAL] and inventory.path is None


def test_path_resolution_flag_env_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "devices.yaml").write_text("devices:\n  cwd-dev:\n    target: rpi4\n    host: a\n")
    (tmp_path / "env.yaml").write_text("devices:\n  env-dev:\n    target: rpi4\n    host: a\n")
    (tmp_path / "flag.yaml").write_text("devices:\n  flag-dev:\n    target: rpi4\n    host: a\n")
    monkeypatch.delenv("EDGESDK_DEVICES", raising=False)
    assert "cwd-dev" in load_inventory().devices
    monkeypatch.setenv("EDGESDK_DEVICES", str(tmp_path / "env.yaml"))
    assert "env-dev" in load_inventory().devices
    assert "flag-dev" in load_inventory(tmp_path / "flag.yaml").devices
    with pytest.raises(InventoryError, match="no such devices file"):
        load_inventory(tmp_path / "missing.yaml")


def test_unknown_device_lists_known():
    with pytest.raises(InventoryError, match=r"unknown device 'nope'.*known: pi-lab, local"):
        parse_inventory(ISSUE_EXAMPLE).get("nope")


def test_no_device_for_target():
    with pytest.raises(InventoryError, match="no device with target 'jetson-orin'"):
        parse_inventory(ISSUE_EXAMPLE).for_target("jetson-orin")


@pytest.mark.parametrize("text, expected", [
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    port: 99999\n",
     r"devices.yaml:5: device 'a', key 'port': .*less than or equal to 65535"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    port: twenty-two\n",
     r"devices.yaml:5: device 'a', key 'port': .*integer"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    hostkey_policy: strict\n",
     r"devices.yaml:5: device 'a', key 'hostkey_policy': unknown key \(known: target, transport, host"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    host_key_policy: yolo\n",
     r"devices.yaml:5: device 'a', key 'host_key_policy': Input should be 'strict' or 'accept-new'"),
    ("devices:\n  a:\n    host: x\n", r"devices.yaml:2: device 'a', settings: 'target' is required"),
    ("devices:\n  a:\n    target: rpi4\n", r"devices.yaml:2: device 'a', settings: an ssh device needs 'host'"),
    ("devices:\n  ok:\n    target: rpi4\n    host: x\n  a:\n    target: rpi99\n    host: x\n",
     r"devices.yaml:6: device 'a', key 'target': unknown target 'rpi99' \(known: .*rpi4"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    tags: lab\n", r"devices.yaml:5: device 'a', key 'tags'"),
    ("devices:\n  a: [1, 2\n", r"devices.yaml:3: not valid YAML"),
    ("devices:\n  a:\n    target: rpi4\n   host: x\n", r"devices.yaml:4: not valid YAML"),
    ("device:\n  a: {}\n", r"devices.yaml:1: expected one top-level key 'devices', found 'device'"),
    ("devices:\n  - a\n", r"devices.yaml:1: 'devices' must map device names to settings"),
    ("devices:\n  a: just-a-string\n", r"devices.yaml:2: device 'a': expected a mapping"),
])
def test_malformed_inventory_names_line_and_key(text, expected):
    with pytest.raises(InventoryError, match=expected):
        parse_inventory(text)


@pytest.mark.parametrize("text, expected", [
    ("devices:\n  'pi;touch /tmp/x':\n    target: rpi4\n    host: x\n", r"devices.yaml:2: device 'pi;touch /tmp/x', key 'name'"),
    ("devices:\n  'pi$(id)':\n    target: rpi4\n    host: x\n", r"key 'name': .*no shell metacharacters"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    workdir: /tmp/$(touch /tmp/x)\n",
     r"devices.yaml:5: device 'a', key 'workdir': .*shell metacharacters"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    workdir: '/tmp/e; rm -rf ~'\n", r"key 'workdir'"),
    ("devices:\n  a:\n    target: rpi4\n    host: x\n    python: 'python3 `id`'\n", r"key 'python': .*shell metacharacters"),
])
def test_shell_metacharacters_in_names_and_paths_are_refused(text, expected):
    with pytest.raises(InventoryError, match=expected):
        parse_inventory(text)
