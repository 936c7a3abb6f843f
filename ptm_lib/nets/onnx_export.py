"""A course model as an ONNX file, run by onnxruntime: what deployment looks like.

    export_onnx(classifier, folder / "model.onnx")      torch.onnx.export (the torch.export-based
                                                       exporter), batch and length left dynamic
    run_onnx(path, ids, mask)                          the logits onnxruntime computes

ONNX is a graph format that many runtimes execute (onnxruntime on CPU and GPU, TensorRT, phones,
browsers). The export traces the model once: data-dependent Python (the library's input checks
and padding trimming) is skipped while tracing, so the file holds only the computation.
"""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn


def export_onnx(model: nn.Module, path: str | Path, example: tuple[torch.Tensor, torch.Tensor] | None = None) -> Path:
    """Write `model` ((ids (B, T) int64, attention_mask (B, T) bool) -> (B, C) or (B, T, V)) to `path`
    as ONNX, with inputs "ids" and "attention_mask", output "logits", and dynamic batch and length.
    Refuses to overwrite an existing file. Returns the path."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"the file should end in .onnx, got {path.name!r}")
    if path.exists():
        raise FileExistsError(f"{path} exists; choose a new name (nothing is overwritten)")
    if example is None:
        ids = torch.full((2, 4), 5, dtype=torch.long)
        example = (ids, torch.ones_like(ids, dtype=torch.bool))
    path.parent.mkdir(parents=True, exist_ok=True)
    dims = {0: "batch", 1: "time"}
    was_training = model.training
    model.eval()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)                      # notes about torchvision ops this model has none of
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():   # progress and tracing notes
            warnings.simplefilter("ignore", (UserWarning, FutureWarning))
            torch.onnx.export(model, example, str(path), input_names=["ids", "attention_mask"],
                              output_names=["logits"], dynamic_shapes=(dims, dims), dynamo=True, verbose=False)
    finally:
        quiet.setLevel(level)
        model.train(was_training)
    return path


def run_onnx(path: str | Path, ids: torch.Tensor, attention_mask: torch.Tensor) -> np.ndarray:
    """The model's output for (ids, attention_mask), computed by onnxruntime on the CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"ids": ids.numpy(), "attention_mask": attention_mask.bool().numpy()})[0]
