"""Devices with addresses of their own: each a network namespace joined to this machine by a veth pair, with
an sshd inside (Debian's, as on loopback). The host end of the link can be cut or shaped (tc tbf) like a
board's cable. Root only: `ip netns` needs it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.devices.sshd_server import SSHServer

SUBNET = "10.214"  # namespace k: this machine 10.214.k.1, the device 10.214.k.2


def ip(*args: str, check: bool = True) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class NetnsDevice:
    index: int
    server: SSHServer

    @property
    def name(self) -> str:
        return f"edgesdk-t{self.index}"

    @property
    def link(self) -> str:
        return f"edgesdkt{self.index}h"  # the host end

    def cut(self) -> None:
        ip("link", "set", self.link, "down")

    def restore(self) -> None:
        ip("link", "set", self.link, "up")

    def shape(self, rate: str = "20mbit") -> None:
        """The link to the device limited to ``rate`` (tc's token bucket filter, both directions' host side)."""
        subprocess.run(["tc", "qdisc", "replace", "dev", self.link, "root", "tbf", "rate", rate, "burst", "32kbit",
                        "latency", "400ms"], check=True)

    def stop(self) -> None:
        self.server.kill()
        ip("netns", "del", self.name, check=False)


def start_netns_device(directory: Path, index: int) -> NetnsDevice:
    if os.geteuid() != 0:
        pytest.fail("devices in network namespaces need root (ip netns): run the suite as root")
    name, host_end, inner_end = f"edgesdk-t{index}", f"edgesdkt{index}h", f"edgesdkt{index}b"
    ip("netns", "del", name, check=False)
    ip("link", "del", host_end, check=False)
    ip("netns", "add", name)
    ip("link", "add", host_end, "type", "veth", "peer", "name", inner_end)
    ip("link", "set", inner_end, "netns", name)
    ip("addr", "add", f"{SUBNET}.{index}.1/30", "dev", host_end)
    ip("link", "set", host_end, "up")
    for args in (("addr", "add", f"{SUBNET}.{index}.2/30", "dev", inner_end), ("link", "set", inner_end, "up"),
                 ("link", "set", "lo", "up")):
        ip("netns", "exec", name, "ip", *args)
    server = SSHServer(directory, port=22, address=f"{SUBNET}.{index}.2", netns=name).start()
    server.known_hosts()
    return NetnsDevice(index, server)
