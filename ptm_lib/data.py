"""Generic data helpers, offline by default (the digits themselves live in `ptm_lib.vision.digits`).

* `check_labels()` — a clear error unless labels are class ids (N,) in [0, n_classes).
* `per_class_subset()` — a labelled budget of n examples per class (label-efficiency experiments).
* `make_loader()` — a seeded torch DataLoader.
* `LengthGroupedSampler` — batches of sequences of similar length (little padding to compute on).
* `sha256_file()`, `verify_sha256()` — checksums of files.
* `fetch()` — the one place that may download: streaming, with a timeout, retries with backoff
  that continue a broken download, an atomic write, and the sha256 checked on every call (cache
  hit or not; a cache hit needs no network). No lesson calls it by default.
"""
from __future__ import annotations

import hashlib
import http.client
import numbers
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset


def check_labels(y: torch.Tensor, n_classes: int, n: int | None = None) -> None:
    """Raise a clear ValueError unless y is a 1-D integer tensor with values in [0, n_classes)
    (and `n` of them, if given)."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        raise ValueError(f"labels must be 1-D (N,), got shape {tuple(getattr(y, 'shape', ()))}")
    if n is not None and len(y) != n:
        raise ValueError(f"expected {n} labels, one per example, got {len(y)}")
    if y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"labels must be integer class ids, got dtype {y.dtype}; use y.long()")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"labels out of range: found [{int(y.min())}, {int(y.max())}]; labels must be in "
                         f"[0, {n_classes - 1}] for a model with {n_classes} classes")


def per_class_subset(X: torch.Tensor, y: torch.Tensor, n_per_class: int,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick `n_per_class` random examples of every class (a labelled budget), in shuffled order.

    X (N, ...), y (N,) -> X_sub (K * n_per_class, ...), y_sub (K * n_per_class,) for the K classes in y.
    The choice depends only on `seed` (not on the global random state). Raises ValueError if some
    class has fewer than `n_per_class` examples.
    """
    _check_examples(X, y)
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels y must be integer class ids, got dtype {y.dtype}")
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, numbers.Integral) or n_per_class < 1:
        raise ValueError(f"n_per_class must be >= 1, got {n_per_class}")
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        if len(idx) < n_per_class:
            raise ValueError(f"class {c} has only {len(idx)} examples, fewer than n_per_class={n_per_class}")
        picks.append(idx[torch.randperm(len(idx), generator=g)[:n_per_class]])
    order = torch.cat(picks)
    order = order[torch.randperm(len(order), generator=g)]
    return X[order], y[order]


def _check_examples(X, y) -> None:
    """X (N, ...) and y (N,) tensors of the same length."""
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor) or X.dim() < 1 or y.dim() != 1:
        raise ValueError(f"expected X (N, ...) and labels y (N,) tensors, got shapes "
                         f"{tuple(getattr(X, 'shape', ()))} and {tuple(getattr(y, 'shape', ()))}")
    if len(X) != len(y):
        raise ValueError(f"X and y differ in length: {len(X)} vs {len(y)}")


def make_loader(X: torch.Tensor, y: torch.Tensor, batch_size: int = 64, *, shuffle: bool = True,
                seed: int = 0) -> DataLoader:
    """A DataLoader of (x (B, ...), y (B,)) batches over (X, y), shuffled reproducibly from `seed`."""
    _check_examples(X, y)
    if len(X) == 0:
        raise ValueError("X and y hold no examples: nothing to load")
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(X, y), batch_size=int(batch_size), shuffle=shuffle, generator=g)


class LengthGroupedSampler(Sampler):
    """Batches of indices whose sequences have similar lengths, for ``DataLoader(batch_sampler=...)``:
    a batch is padded to its longest sequence, so grouping wastes less compute on padding (Hugging
    Face Trainer's ``group_by_length`` does the same).

    lengths: (N,) real tokens per example. Every pass (epoch): a random permutation from `generator`,
    cut into groups of `group` batches; each group sorted by length and cut into batches of
    `batch_size`; then the order of all batches shuffled. Every example is used once per pass
    (`drop_last`: except those of the batches left short at the end of a group, which are skipped);
    the batches still differ from pass to pass.
    """

    def __init__(self, lengths, batch_size: int, *, group: int = 8, generator: torch.Generator | None = None,
                 drop_last: bool = False):
        self.lengths = torch.as_tensor(lengths).reshape(-1)
        if len(self.lengths) == 0:
            raise ValueError("lengths is empty: nothing to batch")
        for name, value in (("batch_size", batch_size), ("group", group)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self.batch_size, self.group, self.drop_last = int(batch_size), int(group), bool(drop_last)
        if self.drop_last and len(self.lengths) < self.batch_size:
            raise ValueError(f"drop_last with batch_size {batch_size} > the {len(self.lengths)} examples: no full batch")
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        if not self.drop_last:
            return -(-len(self.lengths) // self.batch_size)
        span, n = self.batch_size * self.group, len(self.lengths)
        return (n // span) * self.group + (n % span) // self.batch_size

    def __iter__(self):
        order = torch.randperm(len(self.lengths), generator=self.generator)
        span = self.batch_size * self.group
        batches = []
        for start in range(0, len(order), span):
            chunk = order[start:start + span]
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches += [chunk[i:i + self.batch_size].tolist() for i in range(0, len(chunk), self.batch_size)
                        if not self.drop_last or i + self.batch_size <= len(chunk)]
        for b in torch.randperm(len(batches), generator=self.generator).tolist():
            yield batches[b]


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise a clear error if the file's sha256 is not `expected`."""
    actual = sha256_file(path)
    if actual != expected:
        raise ValueError(f"sha256 mismatch for {path}: expected {expected}, got {actual}. "
                         "The file is corrupt or a different version; delete it and fetch/rebuild it.")


def fetch(url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 30.0, retries: int = 4,
          backoff: float = 1.0) -> Path:
    """Download `url` to `dest` unless a file with the right sha256 is already there.

    * A cache hit (`dest` exists) is checked against `sha256` and returned without touching the
      network: it works offline.
    * Otherwise the download streams into ``<dest>.part`` (a `timeout` on every read); a broken
      download is retried up to `retries` times, waiting `backoff` * 1, 2, 4, ... seconds, and
      continues where it stopped (an HTTP Range request; a server that ignores it sends everything
      again). HTTP errors other than 408, 429 and 5xx, and a refused network, are not retried.
    * The sha256 is checked, the file flushed to disk, and only then renamed to `dest` (atomic):
      a half-downloaded or tampered file never appears at `dest`.

    Works with http(s):// and file:// URLs. No lesson calls it by default.
    """
    dest = Path(dest)
    if dest.exists():
        verify_sha256(dest, sha256)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _download(url, part, timeout)
            break
        except (OSError, http.client.HTTPException) as e:   # URLError, timeouts and resets are OSErrors
            if attempt == retries or not _worth_retrying(e):
                raise ConnectionError(f"could not download {url} ({type(e).__name__}: {e}) after {attempt + 1} "
                                      f"attempt(s); {part.name} keeps what arrived, the next call continues it. "
                                      f"Or copy the file to {dest} by hand (sha256 {sha256}).") from e
            time.sleep(backoff * 2 ** attempt)
    actual = sha256_file(part)
    if actual != sha256:
        part.unlink()
        raise ValueError(f"sha256 mismatch for {url}: expected {sha256}, got {actual}; nothing was saved.")
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    return dest


def _download(url: str, part: Path, timeout: float) -> None:
    """Append the rest of `url` to `part` (all of it if `part` is empty or the server ignores Range);
    an error if the connection ends before the length the server announced."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if offset and getattr(resp, "status", None) != 206:   # the server sends the whole file again
            offset = 0
        expected = resp.headers.get("Content-Length")
        received = 0
        with open(part, "ab" if offset else "wb") as out:
            for chunk in iter(lambda: resp.read(1 << 20), b""):
                out.write(chunk)
                received += len(chunk)
    if expected is not None and received < int(expected):
        raise ConnectionResetError(f"the connection closed after {received} of {expected} bytes")


def _worth_retrying(error: BaseException) -> bool:
    """Transient failures: timeouts, resets, 408/429/5xx. Not: other HTTP errors, a refused network."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code in (408, 429) or error.code >= 500
    reason = getattr(error, "reason", error)
    return not isinstance(reason, (PermissionError, FileNotFoundError))
