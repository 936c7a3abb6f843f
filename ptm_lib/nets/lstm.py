"""LSTM encoder-decoder pretraining (Dai & Le 2015), and LSTM text classifiers.

This is the model the essay's §5 code was reaching for, written so that it runs:

    encoder   ids (B, T) --embedding--> (B, T, E) --LSTM--> outputs (B, T, H), state (h, c)
    decoder   the encoder's final state (h, c) starts an LSTM that reads the sentence shifted
              right ([CLS] w1 ... w_{n-1}) and predicts w1 ... wn: logits (B, T, V)

* `SequenceAutoencoder` pretrains on **unlabelled** text: "Semi-supervised Sequence Learning"
  (Dai & Le, NeurIPS 2015) called it SA-LSTM. `autoencoder_loss` is its objective (reconstruct
  the sentence from the encoder's final state); `language_model_loss` is their LM-LSTM variant
  (the encoder predicts the next token, no decoder).
* `LSTMClassifier` is encoder + pooling + a new linear head; `load_encoder_from(autoencoder)`
  copies the pretrained encoder. The label is **never** an input.

Conventions: tensors are batch-first, ``attention_mask`` (B, T) is True on real tokens and
sequences are right-padded (as `ptm_lib.text.WordTokenizer.encode_batch` makes them). Padding
is handled with packed sequences, so a padded position never changes an encoder state.
Every loss takes ``(model, batch)`` with batch ``(ids, mask)`` or ``(ids, mask, labels)``, so
it plugs into `ptm_lib.train.fit`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .common import check_ids, masked_mean, trim_padding
from .registry import check_sizes, register

__all__ = ["LSTMConfig", "LSTMEncoder", "LSTMDecoder", "SequenceAutoencoder", "LSTMClassifier", "shift_right",
           "autoencoder_loss", "language_model_loss"]


@dataclass
class LSTMConfig:
    """Sizes of the LSTM models (one config for the autoencoder and the classifier)."""

    vocab_size: int = 512
    emb_dim: int = 64          # E: word embedding size
    hidden_dim: int = 128      # H: LSTM state size (the essay forgot to pass this one)
    n_layers: int = 1
    dropout: float = 0.0       # between LSTM layers and before the classifier head
    pad_id: int = 0
    bos_id: int = 2            # decoder start token ([CLS] in the course tokenizer)
    tie_embeddings: bool = True  # decoder reuses the encoder's word embeddings
    n_classes: int = 0         # classifier only
    pooling: str = "final"     # classifier: "final" (last real token's h), "mean" or "max" over outputs

    def __post_init__(self):
        if self.pooling not in ("final", "mean", "max"):
            raise ValueError(f"pooling must be 'final', 'mean' or 'max', got {self.pooling!r}")
        check_sizes(self, {"vocab_size": 1, "emb_dim": 1, "hidden_dim": 1, "n_layers": 1, "n_classes": 0},
                    ("dropout",))
        for name in ("pad_id", "bos_id"):
            if not 0 <= getattr(self, name) < self.vocab_size:
                raise ValueError(f"{name}={getattr(self, name)} is outside the vocabulary [0, {self.vocab_size})")


def _lengths(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Real lengths (B,) from the mask (all of T when there is no mask); at least 1."""
    if mask is None:
        return torch.full((ids.shape[0],), ids.shape[1], dtype=torch.long)
    return mask.sum(1).clamp_min(1).long().cpu()


class LSTMEncoder(nn.Module):
    """Embedding + LSTM.

    forward(ids (B, T), mask (B, T) | None) -> outputs (B, T, H) (zeros at padding),
                                              (h, c), each (n_layers, B, H): the state after
                                              each sentence's **last real token**.
    """

    def __init__(self, config: LSTMConfig):
        super().__init__()
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.emb_dim, padding_idx=c.pad_id)
        self.lstm = nn.LSTM(c.emb_dim, c.hidden_dim, num_layers=c.n_layers, batch_first=True,
                            dropout=c.dropout if c.n_layers > 1 else 0.0)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None):
        mask = check_ids(ids, self.embedding.num_embeddings, mask)
        x = self.embedding(ids)                                         # (B, T, E)
        packed = pack_padded_sequence(x, _lengths(ids, mask), batch_first=True, enforce_sorted=False)
        out, (h, c) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, T, H)
        return out, (h, c)


class LSTMDecoder(nn.Module):
    """LSTM language model conditioned on an initial state.

    forward(ids_in (B, T), state (h, c) each (n_layers, B, H), mask (B, T) | None)
        -> logits (B, T, V), final state (h, c).
    Note the state is a **tuple** (h, c): an LSTM needs both (the essay passed h only).
    """

    def __init__(self, config: LSTMConfig, embedding: nn.Embedding | None = None):
        super().__init__()
        c = config
        self.embedding = embedding if embedding is not None else nn.Embedding(c.vocab_size, c.emb_dim,
                                                                              padding_idx=c.pad_id)
        self.lstm = nn.LSTM(c.emb_dim, c.hidden_dim, num_layers=c.n_layers, batch_first=True,
                            dropout=c.dropout if c.n_layers > 1 else 0.0)
        self.out = nn.Linear(c.hidden_dim, c.vocab_size)

    def forward(self, ids_in: torch.Tensor, state, mask: torch.Tensor | None = None):
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError("the decoder state must be the tuple (h, c) returned by the encoder")
        mask = check_ids(ids_in, self.embedding.num_embeddings, mask)
        x = self.embedding(ids_in)
        packed = pack_padded_sequence(x, _lengths(ids_in, mask), batch_first=True, enforce_sorted=False)
        out, state = self.lstm(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids_in.shape[1])
        return self.out(out), state                                     # (B, T, V)


def shift_right(ids: torch.Tensor, bos_id: int) -> torch.Tensor:
    """Decoder input for teacher forcing: (B, T) -> [bos, ids[:, :-1]] (B, T)."""
    return torch.cat([torch.full_like(ids[:, :1], bos_id), ids[:, :-1]], dim=1)


@register
class SequenceAutoencoder(nn.Module):
    """SA-LSTM (Dai & Le 2015): encode a sentence, decode it back from the final state.

    forward(ids (B, T), mask (B, T)) -> reconstruction logits (B, T, V): position t predicts
    ids[:, t] from the encoder's summary and the true previous tokens (teacher forcing on the
    **input text**, which is fine: the input is the target, no label is involved).
    next_token_logits(ids, mask) -> (B, T, V): the encoder read as a language model
    (position t predicts ids[:, t + 1]), through the decoder's output layer.
    """

    arch = "lstm-seq-autoencoder"
    config_class = LSTMConfig

    def __init__(self, config: LSTMConfig | None = None):
        super().__init__()
        self.config = config = config or LSTMConfig()
        self.encoder = LSTMEncoder(config)
        self.decoder = LSTMDecoder(config, self.encoder.embedding if config.tie_embeddings else None)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        _, state = self.encoder(ids, mask)
        logits, _ = self.decoder(shift_right(ids, self.config.bos_id), state, mask)
        return logits

    def next_token_logits(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out, _ = self.encoder(ids, mask)
        return self.decoder.out(out)

    @property
    def token_embeddings(self) -> torch.Tensor:
        """(V, E) input word embeddings of the encoder."""
        return self.encoder.embedding.weight


@register
class LSTMClassifier(nn.Module):
    """Encoder + pooling + linear head: forward(ids (B, T), mask (B, T)) -> logits (B, n_classes).

    features(ids, mask) -> (B, H): the last layer's final state h ("final"), or the mean / max of
    the outputs over real tokens. Only the text goes in: there is no label argument.
    """

    arch = "lstm-classifier"
    config_class = LSTMConfig

    def __init__(self, config: LSTMConfig):
        super().__init__()
        if config.n_classes < 1:
            raise ValueError("LSTMClassifier needs config.n_classes >= 1")
        self.config = config
        self.encoder = LSTMEncoder(config)
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_dim, config.n_classes)

    @classmethod
    def from_autoencoder(cls, autoencoder: SequenceAutoencoder, n_classes: int, **changes) -> "LSTMClassifier":
        """A new classifier whose encoder is a copy of the pretrained `autoencoder`'s encoder."""
        model = cls(replace(autoencoder.config, n_classes=n_classes, **changes))
        model.load_encoder_from(autoencoder)
        return model

    def load_encoder_from(self, model: nn.Module) -> None:
        """Copy the encoder weights of a SequenceAutoencoder (or another LSTMClassifier)."""
        self.encoder.load_state_dict(model.encoder.state_dict())

    def features(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        mask = check_ids(ids, self.config.vocab_size, mask)
        out, (h, _) = self.encoder(ids, mask)
        if self.config.pooling == "final":
            return h[-1]                                                # (B, H)
        if self.config.pooling == "mean":
            return masked_mean(out, mask)
        m = (mask if mask is not None else torch.ones_like(ids, dtype=torch.bool)).unsqueeze(-1)
        return out.masked_fill(~m, float("-inf")).max(1).values

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.drop(self.features(ids, mask)))


# ---------------------------------------------------------------------------- objectives
def autoencoder_loss(model: SequenceAutoencoder, batch) -> torch.Tensor:
    """Mean cross-entropy of reconstructing every real token; padding is ignored.

    batch: (ids (B, T), mask (B, T)[, anything]) -- labels, if present, are NOT used.
    """
    ids, mask = _text_batch(model, batch)
    logits = model(ids, mask)                                           # (B, T, V)
    targets = ids.masked_fill(~mask, -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def language_model_loss(model: SequenceAutoencoder, batch) -> torch.Tensor:
    """Mean cross-entropy of predicting token t+1 from tokens <= t (LM-LSTM); padding ignored."""
    ids, mask = _text_batch(model, batch)
    logits = model.next_token_logits(ids, mask)[:, :-1]                 # (B, T-1, V)
    targets = ids[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def _text_batch(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask) of a batch (ids, mask[, ...]), checked, without the columns that are all padding."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"a batch must be (ids, mask[, labels]), got {type(batch).__name__}")
    ids, mask = batch[0], check_ids(batch[0], model.config.vocab_size, batch[1])
    return trim_padding(ids, mask if mask is not None else torch.ones_like(ids, dtype=torch.bool))
