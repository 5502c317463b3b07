"""Emulated boards: an arm64 Debian root file system run by qemu-user (binfmt), served by its own sshd in
its own network namespace, so `deploy --target rpi4` runs the real aarch64 runtimes without a Pi.

profiles.py  what each board is (target, CPUs, Debian suite)
rootfs.py    the root file system with the runtimes' aarch64 wheels, built once and cached
board.py     bring a board up (namespace, mounts, sshd), take it down, report its state
inventory.py the board's entry in devices.yaml"""
