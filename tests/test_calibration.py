"""Calibration data is checked against the model's inputs before use, with messages that say what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import edgesdk
from edgesdk.calibration import CalibrationData
from edgesdk.errors import CalibrationError
from tests.helpers import mlp_model


@pytest.fixture()
def mlp(tmp_path):
    return edgesdk.load(mlp_model(tmp_path / "mlp.onnx"))


def test_npz_rows_become_batch_one_feeds(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 16, 32), np.float32))
    feeds = list(CalibrationData.from_npz(tmp_path / "c.npz").feeds(mlp))
    assert len(feeds) == 5 and feeds[0]["x"].shape == (1, 16, 32)


def test_iterable_of_feeds(mlp):
    data = CalibrationData.coerce([{"x": np.ones((2, 16, 32), np.float32)}] * 3)
    assert [f["x"].shape for f in data.feeds(mlp)] == [(2, 16, 32)] * 3


def test_missing_input(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", features=np.zeros((5, 16, 32), np.float32))
    with pytest.raises(CalibrationError, match=r"missing an array for model input 'x'"):
        CalibrationData.from_npz(tmp_path / "c.npz").validate(mlp)


def test_wrong_dtype(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 16, 32), np.int64))
    with pytest.raises(CalibrationError, match=r"'x' is int64, the model expects float32"):
        CalibrationData.from_npz(tmp_path / "c.npz").validate(mlp)


def test_wrong_shape(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 16, 31), np.float32))
    with pytest.raises(CalibrationError, match=r"axis 2 must be 32"):
        CalibrationData.from_npz(tmp_path / "c.npz").validate(mlp)


def test_wrong_rank(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 32), np.float32))
    with pytest.raises(CalibrationError, match=r"expects rank 3"):
        CalibrationData.from_npz(tmp_path / "c.npz").validate(mlp)


def test_extra_array_and_uneven_counts(mlp, tmp_path):
    np.savez(tmp_path / "c.npz", x=np.zeros((5, 16, 32), np.float32), y=np.zeros((5, 8), np.float32))
    with pytest.raises(CalibrationError, match="no input for: \\['y'\\]"):
        CalibrationData.from_npz(tmp_path / "c.npz").validate(mlp)
    with pytest.raises(CalibrationError, match="disagree on the number of samples"):
        CalibrationData.from_arrays({"x": np.zeros((5, 16, 32)), "z": np.zeros((4, 2))})


def test_unreadable_file(tmp_path):
    (tmp_path / "c.npz").write_text("not a zip")
    with pytest.raises(CalibrationError, match="not a readable .npz"):
        CalibrationData.from_npz(tmp_path / "c.npz")


def test_int8_recipe_requires_calibration(mlp):
    with pytest.raises(CalibrationError, match="needs calibration data"):
        edgesdk.quantize(mlp, "int8")
