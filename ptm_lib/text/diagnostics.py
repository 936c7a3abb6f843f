"""Did pretraining learn anything transferable? Label-free tests of a masked-LM encoder.

* `embedding_topic_purity` -- of each topical word's nearest neighbours in input-embedding space,
  the share from its own topic (chance: 1 / n_topics);
* `topic_cloze_accuracy` -- mask one topical word per sentence; is the predicted word of the
  right topic?
* `mlm_diagnostics` -- both at once, the numbers `make pretrain` and chapter 3 report.
No labels are used: the language's hidden word-topic map is the answer key.
"""
from __future__ import annotations

import math
import random

import torch

from .language import SyntheticLanguage
from .tokenizer import WordTokenizer

__all__ = ["embedding_topic_purity", "topic_cloze_accuracy", "mlm_diagnostics"]


def embedding_topic_purity(embeddings, tokenizer: WordTokenizer, lang: SyntheticLanguage, k: int = 10) -> float:
    """Mean fraction of an unambiguous topical word's `k` nearest neighbours (cosine, among all
    unambiguous topical words) that belong to the same topic. Chance = 1 / n_topics.

    embeddings: (vocab_size, d) array or tensor, rows indexed by tokenizer ids.
    """
    E = torch.as_tensor(embeddings).detach().to("cpu", torch.float32)
    if E.ndim != 2 or E.shape[0] != len(tokenizer):
        raise ValueError(f"embeddings must be (vocab_size={len(tokenizer)}, d), got {tuple(E.shape)}")
    words = [w for w in lang.words if w in lang.topic_of]
    if not 1 <= k < len(words):
        raise ValueError(f"k must be in [1, {len(words) - 1}], got {k}")
    ids = torch.tensor([tokenizer.index[w] for w in words])
    topics = torch.tensor([lang.topic_of[w] for w in words])
    X = torch.nn.functional.normalize(E[ids], dim=1)
    sim = X @ X.T
    sim.fill_diagonal_(-float("inf"))
    nn_idx = sim.topk(k, dim=1).indices
    return (topics[nn_idx] == topics[:, None]).float().mean().item()


@torch.no_grad()
def topic_cloze_accuracy(model, tokenizer: WordTokenizer, lang: SyntheticLanguage, n_sentences: int = 500,
                         seed: int = 12345) -> dict[str, float]:
    """Cloze probe for a masked LM: mask ONE unambiguous topical word per sentence and let the model
    fill it in, choosing among the unambiguous topical words. Returns {"topic": share of fill-ins
    from the masked word's topic (a uniform guess scores 1 / n_topics), "word": exact matches}.
    The model's train/eval mode is restored afterwards.
    """
    texts = lang.corpus(n_sentences, seed=seed)
    ids, mask = tokenizer.encode_batch(texts)
    rng = random.Random(seed)
    rows, cols, true = [], [], []
    for i, text in enumerate(texts):
        candidates = [j + 1 for j, w in enumerate(text.split()) if w in lang.topic_of]  # +1: [CLS]
        if candidates:
            j = rng.choice(candidates)
            rows.append(i)
            cols.append(j)
            true.append(int(ids[i, j]))
    rows_t, cols_t = torch.tensor(rows), torch.tensor(cols)
    inputs = ids.clone()
    inputs[rows_t, cols_t] = tokenizer.mask_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = model(inputs.to(device), mask.to(device))[rows_t, cols_t].cpu()   # (n, V)
    finally:
        model.train(was_training)
    topical = torch.tensor([tokenizer.index[w] for w in lang.words if w in lang.topic_of])
    pred = topical[logits[:, topical].argmax(1)].tolist()
    vocab = tokenizer.vocab
    topic_hit = [lang.topic_of[vocab[t]] == lang.topic_of[vocab[p]] for p, t in zip(pred, true)]
    return {"topic": sum(topic_hit) / len(true), "word": sum(p == t for p, t in zip(pred, true)) / len(true)}


def mlm_diagnostics(model, tokenizer: WordTokenizer, lang: SyntheticLanguage) -> dict[str, float]:
    """{"purity": embedding_topic_purity, "cloze_topic": topic_cloze_accuracy["topic"]} of a masked LM
    (cloze is NaN for a causal model, which cannot fill in a blank)."""
    purity = embedding_topic_purity(model.token_embeddings, tokenizer, lang)
    cloze = topic_cloze_accuracy(model, tokenizer, lang)["topic"] if not model.config.causal else math.nan
    return {"purity": purity, "cloze_topic": cloze}
