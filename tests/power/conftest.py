"""Power-test fixtures: the emulated board (a profile player and fake sensor tools) for the local transport."""

from __future__ import annotations

import os

import pytest

from tests.power.profile_player import ProfilePlayer

IDLE_W, BUSY_W = 2.0, 6.5


@pytest.fixture
def board(tmp_path, monkeypatch):
    """Profile player running, fake tools first on this process's PATH (the local transport's device)."""
    player = ProfilePlayer(tmp_path / "board", marker=str(tmp_path), idle_w=IDLE_W, busy_w=BUSY_W).start()
    monkeypatch.setenv("PATH", f"{player.bin}{os.pathsep}{os.environ['PATH']}")
    yield player
    player.stop()
