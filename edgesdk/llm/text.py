"""Text for language models: a plain text file (or string) tokenized with the model's own tokenizer and cut
into windows, or an .npz of token ids. Calibration and evaluation both read through here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CalibrationError
from .model import LanguageModel

MIN_EVAL_TOKENS = 16


def read_text(source: str | Path) -> str:
    path = Path(source).expanduser()
    if not path.is_file():
        raise CalibrationError(f"{path}: no such text file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CalibrationError(f"{path}: not UTF-8 text") from None


def token_windows(lm: LanguageModel, ids: np.ndarray, window: int, count: int | None = None) -> list[np.ndarray]:
    """Non-overlapping windows of ``window`` tokens, each starting with BOS (a last, shorter window is kept
    when it has at least two tokens)."""
    bos = lm.config.bos_token_id
    body = window - (1 if bos is not None else 0)
    windows = []
    for start in range(0, len(ids), body):
        chunk = ids[start:start + body]
        if len(chunk) < 2:
            break
        windows.append(np.concatenate([[bos], chunk]).astype(np.int64) if bos is not None else chunk.astype(np.int64))
        if count and len(windows) == count:
            break
    return windows


def windows_from(lm: LanguageModel, source: Any, window: int, count: int | None, origin: str) -> list[np.ndarray]:
    """Token windows from a text file, a string of text, or an .npz holding ``input_ids`` [samples, tokens]."""
    if isinstance(source, (str, Path)) and Path(source).suffix == ".npz":
        with np.load(Path(source).expanduser(), allow_pickle=False) as npz:
            if "input_ids" not in npz.files:
                raise CalibrationError(f"{source}: an LM's .npz needs an 'input_ids' array [samples, tokens]; it has {npz.files}")
            ids = npz["input_ids"]
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise CalibrationError(f"{source}: 'input_ids' must be integer [samples, tokens], found {ids.dtype}{list(ids.shape)}")
        if ids.size and (ids.min() < 0 or ids.max() >= lm.config.vocab):
            raise CalibrationError(f"{source}: token ids outside the vocabulary (0..{lm.config.vocab - 1})")
        if ids.shape[1] > lm.max_tokens:
            raise CalibrationError(f"{source}: rows of {ids.shape[1]} tokens; the model holds {lm.max_tokens} "
                                   f"({'its static cache' if lm.context else 'its context'})")
        return [row.astype(np.int64) for row in ids[:count]]
    if lm.tokenizer is None:
        raise CalibrationError(f"{origin}: text needs the model's tokenizer, and this model has none")
    # a path names a file, whatever its suffix (strings of text come through lm_data as a list)
    return token_windows(lm, lm.encode(read_text(source), bos=False), window, count)


CALIBRATION_WINDOW = 128


def lm_data(lm: LanguageModel, source: Any, origin: str, count: int | None = None, window: int = CALIBRATION_WINDOW):
    """CalibrationData of prefill feeds (token window + empty cache) from a text file, an .npz of token ids,
    or a list of strings."""
    from ..calibration import CalibrationData

    if isinstance(source, CalibrationData):
        return source
    window = min(window, lm.max_tokens)  # a static form's cache holds context tokens
    if isinstance(source, (list, tuple)) and all(isinstance(t, str) for t in source):
        windows = [w for text in source for w in token_windows(lm, lm.encode(text, bos=False), window)][:count]
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise CalibrationError(f"{path}: no such file (an LM takes a text file or an .npz of input_ids)")
        windows = windows_from(lm, path, window, count, origin)
    else:
        raise CalibrationError(f"{origin}: an LM takes a text file, an .npz of input_ids or a list of strings, "
                               f"not {type(source).__name__}")
    if not windows:
        raise CalibrationError(f"{origin}: {source!s:.60} gives no token window of at least two tokens")
    return CalibrationData([lm.prefill_feed(w) for w in windows], str(source) if not isinstance(source, list) else origin)
