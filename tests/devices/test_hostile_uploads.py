"""The device's own checks, against the loopback sshd: whatever the host let through (here the host checks are
bypassed on purpose), an upload that would write outside the device's workdir is refused on the device and
nothing is written outside it."""

from __future__ import annotations

import sys

import pytest
import yaml

import edgesdk
from edgesdk.artifact import sha256_file
from edgesdk.devices.inventory import parse_inventory
from edgesdk.devices.transport import open_transport
from edgesdk.devices.upload import FileToPush, push
from edgesdk.errors import UploadError

from tests.devices.sshd_server import write_devices


@pytest.fixture
def jail(tmp_path):
    """(workdir, outside): the device's workdir and a sibling folder that must stay empty."""
    workdir, outside = tmp_path / "board" / "workdir", tmp_path / "board" / "home"
    outside.mkdir(parents=True)
    return workdir, outside


def files_in(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.mark.parametrize("name", [
    "../home/authorized_keys",
    "artifacts/x/../../../home/authorized_keys",
    "/ABSOLUTE/authorized_keys",
    "artifacts//x",
    "./x",
])
def test_a_name_leaving_the_workdir_is_refused_on_the_device(sshd, jail, tmp_path, name):
    workdir, outside = jail
    name = name.replace("/ABSOLUTE", str(outside))
    payload = tmp_path / "key.pub"
    payload.write_text("ssh-ed25519 AAAA attacker\n")
    device = parse_inventory(yaml.safe_dump({"devices": {"loop": sshd.device(workdir=str(workdir))}})).get("loop")
    with open_transport(device) as link, pytest.raises(UploadError, match="refused the upload.*plain relative path"):
        push(link, sys.executable, str(workdir), [FileToPush(payload, name, sha256_file(payload), payload.stat().st_size)])
    assert files_in(outside) == []


def test_a_symlinked_folder_in_the_workdir_is_not_written_through(sshd, jail, int8_artifact, tmp_path):
    workdir, outside = jail
    workdir.mkdir(parents=True)
    (workdir / "artifacts").symlink_to(outside, target_is_directory=True)  # planted on the board
    devices = write_devices(tmp_path / "devices.yaml", {"loop": sshd.device(workdir=str(workdir))})
    with pytest.raises(UploadError, match="artifacts is a symlink on the device"):
        edgesdk.profile(int8_artifact, device="loop", runs=1, warmup=0, devices=devices, runs_dir=tmp_path / "runs")
    assert files_in(outside) == []


def test_a_planted_partial_symlink_is_refused_not_followed(sshd, jail, tmp_path):
    """A '.name.partial' symlink (pointing at a file outside): a tampered board, refused, the file untouched."""
    workdir, outside = jail
    (workdir / "artifacts").mkdir(parents=True)
    victim = outside / "authorized_keys"
    victim.write_text("the owner's key\n")
    (workdir / "artifacts" / ".model.bin.partial").symlink_to(victim)
    payload = tmp_path / "model.bin"
    payload.write_bytes(b"model")
    device = parse_inventory(yaml.safe_dump({"devices": {"loop": sshd.device(workdir=str(workdir))}})).get("loop")
    with open_transport(device) as link, pytest.raises(UploadError, match=r"\.model\.bin\.partial is a symlink"):
        push(link, sys.executable, str(workdir), [FileToPush(payload, "artifacts/model.bin", sha256_file(payload), 5)])
    assert victim.read_text() == "the owner's key\n"
    assert not (workdir / "artifacts" / "model.bin").exists()


def test_the_default_workdir_is_private(int8_artifact, tmp_path, monkeypatch):
    """No workdir in devices.yaml: ~/.cache/edgesdk of the device user (not a fixed path under /tmp), created
    0700. A device whose home is a fresh folder, so the folder cannot already be there."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    devices = write_devices(tmp_path / "devices.yaml", {"here": {"transport": "local", "target": "host"}})
    edgesdk.profile(int8_artifact, device="here", runs=1, warmup=0, devices=devices, runs_dir=tmp_path / "runs")
    workdir = home / ".cache" / "edgesdk"
    assert (workdir / "artifacts").is_dir()
    assert workdir.stat().st_mode & 0o777 == 0o700
