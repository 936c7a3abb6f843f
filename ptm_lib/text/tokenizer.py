"""A word-level tokenizer with BERT's special tokens.

    tok = WordTokenizer.from_language(lang)
    ids, mask = tok.encode_batch(["the brelo sees a tusk ."])   # (B, T) int64, (B, T) bool

Whitespace split, a fixed vocabulary, ``[CLS]`` first; unknown words become ``[UNK]``
(``unknown="unk"``) or raise (``unknown="error"``). Batches are right-padded with ``[PAD]``.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

__all__ = ["SPECIAL_TOKENS", "PAD", "UNK", "CLS", "SEP", "MASK", "WordTokenizer"]

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, UNK, CLS, SEP, MASK)


class WordTokenizer:
    """Word-level tokenizer: whitespace split, fixed vocabulary.

    ``ids = [CLS] w1 ... wn [SEP]?`` ; unknown words become ``[UNK]``
    (``unknown="unk"``) or raise ``KeyError`` (``unknown="error"``).
    """

    def __init__(self, words: Iterable[str], unknown: str = "unk"):
        if unknown not in ("unk", "error"):
            raise ValueError(f"unknown must be 'unk' or 'error', got {unknown!r}")
        self.unknown = unknown
        vocab = list(SPECIAL_TOKENS)
        seen = set(vocab)
        for w in words:
            if not isinstance(w, str) or not w or any(ch.isspace() for ch in w):
                raise ValueError(f"invalid vocabulary word {w!r}")
            if w not in seen:
                seen.add(w)
                vocab.append(w)
        self.vocab: list[str] = vocab
        self.index: dict[str, int] = {w: i for i, w in enumerate(vocab)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)
        self.special_ids: tuple[int, ...] = tuple(range(len(SPECIAL_TOKENS)))
        self.n_special = len(SPECIAL_TOKENS)

    @classmethod
    def from_language(cls, lang, unknown: str = "unk") -> "WordTokenizer":
        """The tokenizer of a `SyntheticLanguage`: its whole vocabulary."""
        return cls(lang.words, unknown=unknown)

    @classmethod
    def from_corpus(cls, texts: Iterable[str], min_count: int = 1, unknown: str = "unk"):
        counts: dict[str, int] = {}
        for t in texts:
            for w in t.split():
                counts[w] = counts.get(w, 0) + 1
        return cls(sorted(w for w, c in counts.items() if c >= min_count), unknown=unknown)

    def __len__(self) -> int:
        return len(self.vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def token_id(self, word: str) -> int:
        i = self.index.get(word)
        if i is None:
            if self.unknown == "error":
                raise KeyError(f"unknown word {word!r} (tokenizer built with unknown='error')")
            return self.unk_id
        return i

    def encode(self, text: str, add_cls: bool = True, add_sep: bool = False,
               max_len: int | None = None) -> list[int]:
        """Text -> list of ids (truncated to ``max_len`` if given)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        ids = [self.cls_id] if add_cls else []
        ids += [self.token_id(w) for w in text.split()]
        if add_sep:
            ids.append(self.sep_id)
        if max_len is not None:
            if max_len < 1:
                raise ValueError(f"max_len must be >= 1, got {max_len}")
            ids = ids[:max_len]
        return ids

    def encode_batch(self, texts: Sequence[str], max_len: int | None = None,
                     add_cls: bool = True, add_sep: bool = False):
        """Texts -> ``(ids, attention_mask)``: LongTensor (B, T), BoolTensor (B, T).

        Right-padded with ``[PAD]``; ``attention_mask`` is True on real tokens.
        T = longest sequence (capped by ``max_len``).
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of strings, not a string")
        seqs = [self.encode(t, add_cls=add_cls, add_sep=add_sep, max_len=max_len) for t in texts]
        T = max(1, max((len(s) for s in seqs), default=1))
        arr = np.full((len(seqs), T), self.pad_id, dtype=np.int64)
        for i, s in enumerate(seqs):
            arr[i, : len(s)] = s
        ids = torch.from_numpy(arr)
        return ids, ids != self.pad_id

    def decode(self, ids, skip_special: bool = True) -> str:
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out = []
        for i in ids:
            if not 0 <= i < len(self.vocab):
                raise ValueError(f"id {i} out of range [0, {len(self.vocab)})")
            if skip_special and i < self.n_special:
                continue
            out.append(self.vocab[i])
        return " ".join(out)
