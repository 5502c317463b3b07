"""Calibration text for a causal LM: windows that fit the model (a static form's cache holds --context tokens:
a longer window wrote past its last slot and ONNX Runtime failed in ScatterND mid-quantization)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgesdk.errors import CalibrationError
from edgesdk.llm.text import lm_data


def test_a_static_forms_calibration_windows_fit_its_cache(gemma_graph, lm_text):
    static = dataclasses.replace(gemma_graph.lm, context=48, form="static")
    data = lm_data(static, str(lm_text[0]), "calibration data", count=4)
    feeds = data._raw  # the samples as made (the dynamic graph at hand has no `position` input to check them against)
    assert len(feeds) == 4
    assert all(feed["input_ids"].shape[1] == 48 and feed["past.0.key"].shape[2] == 48 for feed in feeds)


def test_token_ids_longer_than_the_static_cache_are_refused(gemma_graph, tmp_path):
    static = dataclasses.replace(gemma_graph.lm, context=48, form="static")
    np.savez(tmp_path / "ids.npz", input_ids=np.ones((2, 64), np.int64))
    with pytest.raises(CalibrationError, match="rows of 64 tokens; the model holds 48 \\(its static cache\\)"):
        lm_data(static, tmp_path / "ids.npz", "calibration data")
