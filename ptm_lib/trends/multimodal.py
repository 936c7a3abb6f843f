"""CLIP-style multimodal pretraining on the 8x8 digits: images and captions in one space.

    describe(X)                     attributes read from the pixels: ink, size, slant (N,) each
    make_captions(X, y, seed)       one caption per image from its label and attributes (seeded templates)
    clip_loss(img, txt, scale)      CLIP's symmetric InfoNCE on a batch of pairs; clip_loss_reference checks it
    FrozenTextTower                 LiT: a frozen pretrained sentence encoder (MiniLM) + a learned projection
    BagOfWordsTower                 the control: word embeddings learned from scratch, averaged
    CLIP                            an image tower (the course's ResNet), a text tower, a learned temperature
    train_clip(model, X, captions)  contrastive training on image-caption pairs (AdamW, cosine)
    zero_shot_accuracy(...)         classify images by the prompt of each class they are closest to
    recall_at_k(sim, match, k)      cross-modal retrieval, with `retrieval_chance` beside it

Radford et al. (ICML 2021, CLIP) train an image encoder and a text encoder so that the cosine
similarity of an image and its caption is high and that of the other pairs in the batch low; the
loss is a cross-entropy over the rows and over the columns of the similarity matrix, scaled by a
learned temperature. Zhai et al. (CVPR 2022, LiT) keep a pretrained tower locked. Here the text
tower is locked (a real pretrained sentence encoder) and the image tower learns.
"""
from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..train import check_positive, warmup_schedule
from ..vision.resnet import ResNet, ResNetConfig
from ..vision.simclr import augment

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Training captions: the class is named by its English word, with attributes from the pixels.
CAPTION_TEMPLATES = (
    "a handwritten {word}",
    "the digit {word} drawn with {stroke} strokes",
    "number {word}, {size}",
    "a {size} {word}, {slant}",
    "{word}, written with {stroke} lines",
    "a {word} with {stroke} strokes, {slant}",
)
# Prompts never used in training. NEW_WORDING names the class by the same word as the captions
# (only the wording around it is new); NUMERALS names it by a numeral, which no caption contains.
NEW_WORDING = ("a picture of the number {word}", "an image showing a {word}", "this is a {word}", "{word}")
NUMERALS = ("{digit}", "the number {digit}", "a picture of a {digit}")

STROKE = ("thin", "medium", "thick")
SIZE = ("small", "medium-sized", "large")
SLANT = ("leaning left", "upright", "leaning right")


def _images(X: torch.Tensor) -> torch.Tensor:
    if not isinstance(X, torch.Tensor) or not X.is_floating_point():
        raise TypeError(f"X must be a floating-point tensor of digits, got {type(X).__name__}")
    if X.dim() not in (2, 4) or X[0].numel() != 64:
        raise ValueError(f"X must be (N, 64) or (N, 1, 8, 8) digits, got shape {tuple(X.shape)}")
    return X.reshape(len(X), 8, 8).float()


def describe(X: torch.Tensor) -> dict[str, np.ndarray]:
    """Attributes of each digit, read from the pixels: X (N, 64) in [0, 1] -> dict of (N,) arrays.

    ink    mean pixel value (thick strokes have more ink)
    size   radius of gyration in pixels: the ink-weighted root-mean-square distance of the pixels
           from the ink's centre (a digit spread over the box is large; most span all 8 rows,
           so the height would not tell them apart)
    slant  ink-weighted regression slope of column on row, d(col)/d(row): > 0 means the top
           leans right (rows grow downwards)
    """
    img = _images(X)
    rows = torch.arange(8.0).view(1, 8, 1).expand_as(img)
    cols = torch.arange(8.0).view(1, 1, 8).expand_as(img)
    mass = img.sum((1, 2)).clamp(min=1e-6)
    r_mean = (img * rows).sum((1, 2)) / mass
    c_mean = (img * cols).sum((1, 2)) / mass
    cov = (img * (rows - r_mean.view(-1, 1, 1)) * (cols - c_mean.view(-1, 1, 1))).sum((1, 2)) / mass
    var = (img * (rows - r_mean.view(-1, 1, 1)) ** 2).sum((1, 2)) / mass
    var_c = (img * (cols - c_mean.view(-1, 1, 1)) ** 2).sum((1, 2)) / mass
    return {"ink": img.mean((1, 2)).numpy(), "size": (var + var_c).sqrt().numpy(),
            "slant": (-cov / var.clamp(min=1e-6)).numpy()}


def attribute_thresholds(X: torch.Tensor) -> dict[str, tuple[float, float]]:
    """Tercile cut points of each attribute on reference images X (e.g. the training split)."""
    return {k: tuple(float(q) for q in np.quantile(v, [1 / 3, 2 / 3])) for k, v in describe(X).items()}


def attribute_words(X: torch.Tensor, thresholds: dict | None = None) -> list[dict[str, str]]:
    """One dict per image: the stroke / size / slant words of its tercile (thresholds from X if None)."""
    thresholds = thresholds or attribute_thresholds(X)
    att = describe(X)
    bins = {k: np.digitize(att[k], thresholds[k]) for k in ("ink", "size", "slant")}
    return [{"stroke": STROKE[s], "size": SIZE[h], "slant": SLANT[t]}
            for s, h, t in zip(bins["ink"], bins["size"], bins["slant"])]


def make_captions(X: torch.Tensor, y, seed: int = 0, *, templates=CAPTION_TEMPLATES,
                  thresholds: dict | None = None) -> list[str]:
    """A caption per image: X (N, 64), y (N,) labels 0..9 -> N strings, each from a template drawn
    at random (seeded) and filled with the class word and the image's attributes."""
    y = [int(v) for v in (y.tolist() if hasattr(y, "tolist") else y)]
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} images but y has {len(y)} labels")
    if any(not 0 <= v <= 9 for v in y):
        raise ValueError("labels must be digits 0..9")
    if not templates:
        raise ValueError("templates is empty")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(templates), len(y))
    words = attribute_words(X, thresholds)
    return [templates[t].format(word=WORDS[c], digit=c, **w) for t, c, w in zip(picks, y, words)]


def class_prompts(template: str) -> list[str]:
    """The ten prompts of one template, in class order: "a photo of a {word}" -> ["a photo of a zero", ...]."""
    return [template.format(word=WORDS[c], digit=c) for c in range(10)]


# ------------------------------------------------------------------------------------------------
# The loss
# ------------------------------------------------------------------------------------------------

def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """CLIP's symmetric InfoNCE: image_emb, text_emb (N, D), row i of each is a pair.

    logits = scale * normalise(image) @ normalise(text).T   (N, N);
    loss = (cross_entropy(logits, arange(N)) + cross_entropy(logits.T, arange(N))) / 2
    (Radford et al. 2021, Figure 3). `logit_scale` is the multiplier 1/temperature, not its log.
    """
    if image_emb.dim() != 2 or image_emb.shape != text_emb.shape or len(image_emb) < 2:
        raise ValueError(f"need two (N, D) batches with N >= 2, got {tuple(image_emb.shape)} and {tuple(text_emb.shape)}")
    img, txt = F.normalize(image_emb, dim=1), F.normalize(text_emb, dim=1)
    logits = logit_scale * img @ txt.T
    target = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_loss_reference(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """The same loss written as the formula, pair by pair, in float64 (slow; for checking `clip_loss`):
    the mean over i of  -log softmax_j(s * cos(I_i, T_j))[i]  and of  -log softmax_j(s * cos(T_i, I_j))[i]."""
    img, txt = image_emb.double(), text_emb.double()
    img = img / img.norm(dim=1, keepdim=True)
    txt = txt / txt.norm(dim=1, keepdim=True)
    n, s, terms = len(img), float(logit_scale), []
    for i in range(n):
        to_texts = torch.stack([s * img[i] @ txt[j] for j in range(n)])
        to_images = torch.stack([s * txt[i] @ img[j] for j in range(n)])
        terms.append(-(to_texts[i] - torch.logsumexp(to_texts, 0)))
        terms.append(-(to_images[i] - torch.logsumexp(to_images, 0)))
    return torch.stack(terms).mean()


# ------------------------------------------------------------------------------------------------
# The towers
# ------------------------------------------------------------------------------------------------

def _check_strings(texts) -> list[str]:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of strings")
    return list(texts)


class FrozenTextTower(nn.Module):
    """LiT's locked text tower: a frozen sentence encoder `encode_fn` (texts -> (N, 384) array, e.g.
    `ptm_lib.text.minilm.embed`) and a learned linear projection to `dim`. Embeddings are cached per
    string, so each distinct caption is encoded once; unseen strings (new prompts) are encoded on use."""

    def __init__(self, encode_fn, in_dim: int = 384, dim: int = 64):
        super().__init__()
        self.encode_fn, self.cache = encode_fn, {}
        self.proj = nn.Linear(in_dim, dim)

    def frozen(self, texts) -> torch.Tensor:
        """The locked encoder's embeddings (N, in_dim), from the cache when possible."""
        texts = _check_strings(texts)
        new = sorted(set(t for t in texts if t not in self.cache))
        if new:
            for t, row in zip(new, np.asarray(self.encode_fn(new), dtype=np.float32)):
                self.cache[t] = torch.from_numpy(row)
        return torch.stack([self.cache[t] for t in texts])

    def forward(self, texts) -> torch.Tensor:
        return self.proj(self.frozen(texts))


def words_of(text: str) -> list[str]:
    """Lower-case word tokens: "Number seven, small" -> ["number", "seven", "small"]."""
    return re.findall(r"[a-z0-9]+", text.lower())


class BagOfWordsTower(nn.Module):
    """The scratch control: a vocabulary of the training captions' words; a text is the mean of its
    words' learned embeddings (nn.EmbeddingBag), then a linear projection. Words outside the
    vocabulary are dropped; a text with none gets the embedding of the [UNK] row."""

    def __init__(self, captions, dim: int = 64, emb_dim: int = 64):
        super().__init__()
        vocab = sorted({w for c in _check_strings(captions) for w in words_of(c)})
        self.index = {w: i + 1 for i, w in enumerate(vocab)}        # 0 = [UNK]
        self.bag = nn.EmbeddingBag(len(vocab) + 1, emb_dim, mode="mean")
        self.proj = nn.Linear(emb_dim, dim)

    def known(self, text: str) -> list[str]:
        """The words of `text` this tower has an embedding for."""
        return [w for w in words_of(text) if w in self.index]

    def forward(self, texts) -> torch.Tensor:
        ids = [[self.index[w] for w in words_of(t) if w in self.index] or [0] for t in _check_strings(texts)]
        flat = torch.tensor([i for row in ids for i in row])
        offsets = torch.tensor([0] + [len(r) for r in ids[:-1]]).cumsum(0)
        return self.proj(self.bag(flat, offsets))


class CLIP(nn.Module):
    """An image tower (the course's ResNet with a projection head to `dim`, initialised from `seed`
    without touching the global random state), a text tower giving (N, dim), and CLIP's learned
    temperature: logit_scale = exp(t), initialised to 1/0.07, capped at 100."""

    def __init__(self, text_tower: nn.Module, dim: int = 64, width: int = 16, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):            # the image tower's init depends on `seed` only
            torch.manual_seed(seed)
            self.image = ResNet(ResNetConfig(width=width, blocks=(1, 1), n_classes=0, proj_dim=dim))
        self.text = text_tower
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=math.log(100)).exp()

    def encode_images(self, X: torch.Tensor) -> torch.Tensor:
        """Unit-length image embeddings (N, dim)."""
        return F.normalize(self.image.project(X.float()), dim=1)

    def encode_texts(self, texts) -> torch.Tensor:
        """Unit-length text embeddings (N, dim)."""
        return F.normalize(self.text(texts), dim=1)


def train_clip(model: CLIP, X: torch.Tensor, captions, *, steps: int = 300, batch_size: int = 128,
               lr: float = 3e-3, strength: float = 0.5, seed: int = 0, callback=None) -> list[float]:
    """Contrastive training on pairs (X[i], captions[i]): AdamW (weight decay 1e-4), cosine decay to
    10 %; images augmented (`simclr.augment` at `strength`). Returns the loss of every step.
    `callback(step, loss)` is called after each step (for a progress bar)."""
    check_positive(steps=steps, batch_size=batch_size, lr=lr)
    captions = _check_strings(captions)
    if len(captions) != len(X):
        raise ValueError(f"{len(X)} images but {len(captions)} captions")
    g = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    scheduler = warmup_schedule(optimizer, warmup=min(20, steps), total=steps)
    model.train()
    losses, batch_size = [], min(batch_size, len(X))
    for step in range(steps):
        idx = torch.randperm(len(X), generator=g)[:batch_size]
        images = augment(X[idx].float(), strength, g)
        loss = clip_loss(model.image.project(images), model.text([captions[i] for i in idx]), model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step, losses[-1])
    model.eval()
    return losses


# ------------------------------------------------------------------------------------------------
# Evaluation
# ------------------------------------------------------------------------------------------------

@torch.no_grad()
def image_embeddings(model: CLIP, X: torch.Tensor) -> torch.Tensor:
    """(N, dim) unit-length image embeddings, the model in eval mode."""
    model.eval()
    return model.encode_images(X)


@torch.no_grad()
def class_embeddings(model: CLIP, templates) -> torch.Tensor:
    """(10, dim): for each class, the normalised mean of its prompts' embeddings over `templates`
    (CLIP's prompt ensembling; one template = one prompt per class)."""
    if isinstance(templates, str):
        templates = [templates]
    if not templates:
        raise ValueError("templates is empty")
    model.eval()
    per = torch.stack([model.encode_texts(class_prompts(t)) for t in templates])     # (T, 10, dim)
    return F.normalize(per.mean(0), dim=1)


@torch.no_grad()
def zero_shot_predict(model: CLIP, X: torch.Tensor, templates) -> torch.Tensor:
    """Predicted digit (N,) = the class whose prompt embedding is most similar to the image's."""
    return (image_embeddings(model, X) @ class_embeddings(model, templates).T).argmax(1)


def zero_shot_accuracy(model: CLIP, X: torch.Tensor, y: torch.Tensor, templates) -> float:
    """Share of images whose zero-shot prediction with `templates` is their label."""
    return float((zero_shot_predict(model, X, templates) == torch.as_tensor(y)).float().mean())


def recall_at_k(sim: torch.Tensor, match: torch.Tensor, k: int) -> float:
    """Retrieval recall@k: sim (Q, C) query-candidate similarities, match (Q, C) bool (which
    candidates are right for each query) -> share of queries with a right candidate in their top k."""
    if sim.shape != match.shape or sim.dim() != 2:
        raise ValueError(f"sim and match must be (Q, C) of one shape, got {tuple(sim.shape)} and {tuple(match.shape)}")
    if not 1 <= k <= sim.shape[1]:
        raise ValueError(f"k must be in [1, {sim.shape[1]}], got {k}")
    top = sim.topk(k, dim=1).indices
    return float(match.gather(1, top).any(1).float().mean())


def retrieval_chance(match: torch.Tensor, k: int) -> float:
    """Expected recall@k of a random ranking: mean over queries of 1 - C(C - m, k) / C(C, k), m = right candidates."""
    n = match.shape[1]
    m = match.sum(1).tolist()
    return float(np.mean([1 - math.comb(n - int(mi), k) / math.comb(n, k) for mi in m]))


def caption_match(captions) -> torch.Tensor:
    """(N, N) bool: pair i's caption is the same string as pair j's (identical captions are equally right)."""
    captions = _check_strings(captions)
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    v = torch.tensor([ids[c] for c in captions])
    return v[:, None] == v[None, :]


@torch.no_grad()
def retrieval(model: CLIP, X: torch.Tensor, captions, ks=(1, 5)) -> dict[str, float]:
    """Image->text and text->image recall@k on held-out pairs, and the chance level of each."""
    match = caption_match(captions)
    sim = image_embeddings(model, X) @ model.encode_texts(captions).T       # (N images, N texts)
    out = {}
    for k in ks:
        out[f"i2t@{k}"] = recall_at_k(sim, match, k)
        out[f"t2i@{k}"] = recall_at_k(sim.T, match.T, k)
        out[f"chance@{k}"] = retrieval_chance(match, k)
    return out
