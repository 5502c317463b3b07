"""Host keys for paramiko: SHA256 fingerprints as OpenSSH prints them, and the two policies a device may
choose for a key missing from known_hosts (a changed key is always refused by paramiko itself)."""

from __future__ import annotations

import os


def fingerprint(key) -> str:
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


class UnknownHostKey(Exception):
    def __init__(self, fingerprint: str):
        super().__init__(fingerprint)
        self.fingerprint = fingerprint


class StrictPolicy:
    """Unknown host key: refuse (paramiko calls this only for keys missing from known_hosts)."""

    def missing_host_key(self, client, hostname, key):
        raise UnknownHostKey(fingerprint(key))


class AcceptNewPolicy:
    """Unknown host key: trust it and append it to known_hosts (a changed key is still refused by paramiko)."""

    def __init__(self, known_hosts: str):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        directory = os.path.dirname(self.known_hosts)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(self.known_hosts, "a") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
