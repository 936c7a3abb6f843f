"""A wav2vec 2.0-style model at toy scale, its two pretraining objectives, and the shipped checkpoints.

    python -m ptm_lib.speech.wav2vec --name speech_simclr --out data     # re-create a shipped checkpoint

The network (`Wav2Vec`), read top to bottom:

    log-mel (B, 40, 101) --FeatureEncoder: 2 strided convs--> z (B, 51, D)   latent frames, 20 ms apart
    z --(mask spans)--> + positions --2 transformer Blocks--> c (B, 51, D)  context vectors
    z --Quantizer: G groups x V codes, Gumbel-softmax--> q (B, 51, D)        discrete targets

The feature encoder reads **log-mel frames** (10 ms hop, `ptm_lib.speech.data.log_mel`), not the
raw waveform as wav2vec 2.0 does: raw 22 kHz audio needs a 7-layer, 320x-strided conv stack that
costs far more than this chapter's CPU budget; the log-mel frames are what its first layers
would learn to compute anyway.

Objectives (each `loss(model, batch)` -> (loss, stats)):

* `masked_contrastive_loss` (wav2vec 2.0): mask spans of latent frames, and at each masked frame
  pick the true quantised target q_t among K distractors (quantised frames of other masked
  positions of the same clip) by cosine similarity / temperature (InfoNCE), plus the **diversity
  loss** that keeps every codebook entry in use. With ``targets="stopgrad"`` the targets are the
  continuous latents z_t themselves, detached: the naive variant, which collapses.
* `utterance_contrastive_loss` (SimCLR): two augmented views of a clip (band shift, time shift,
  gain, noise floor, time and frequency masks) must find each other among the batch
  (NT-Xent on the projected mean of c).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nets.registry import check_sizes, register
from ..nets.transformer import Block, TransformerConfig


@dataclass
class Wav2VecConfig:
    """n_mels: input bands. d_model: D. n_layers/n_heads: the transformer. max_frames: positions.
    n_groups x n_codes: the quantiser's codebooks (G x V). proj_dim: the contrastive space."""

    n_mels: int = 40
    d_model: int = 96
    n_layers: int = 2
    n_heads: int = 4
    max_frames: int = 64
    n_groups: int = 2
    n_codes: int = 32
    proj_dim: int = 64

    def __post_init__(self):
        check_sizes(self, {"n_mels": 1, "d_model": 1, "n_layers": 0, "n_heads": 1, "max_frames": 1,
                           "n_groups": 1, "n_codes": 2, "proj_dim": 1})
        if self.d_model % self.n_heads or self.d_model % self.n_groups:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads} "
                             f"and n_groups={self.n_groups}")


class FeatureEncoder(nn.Module):
    """Log-mel (B, n_mels, T) -> latent frames z (B, T', D), T' = ceil(T / 2): two convolutions over
    time (kernel 5 stride 2, kernel 3 stride 1) with GELU, then LayerNorm. Each clip is first shifted
    to zero mean (a gain is an additive constant on a log scale)."""

    def __init__(self, cfg: Wav2VecConfig):
        super().__init__()
        self.conv1 = nn.Conv1d(cfg.n_mels, cfg.d_model, 5, stride=2, padding=2)
        self.conv2 = nn.Conv1d(cfg.d_model, cfg.d_model, 3, stride=1, padding=1)
        self.ln = nn.LayerNorm(cfg.d_model)

    def forward(self, mel):
        x = mel - mel.mean(dim=(1, 2), keepdim=True)
        x = F.gelu(self.conv2(F.gelu(self.conv1(x))))          # (B, D, T')
        return self.ln(x.transpose(1, 2))                     # (B, T', D)


class Quantizer(nn.Module):
    """z (B, T, D) -> q (B, T, D): G groups each pick one of V learned codes (D/G numbers) with a
    straight-through Gumbel-softmax at temperature `tau`; also returns the batch's average code
    probabilities (G, V), for the diversity loss."""

    def __init__(self, cfg: Wav2VecConfig):
        super().__init__()
        self.G, self.V = cfg.n_groups, cfg.n_codes
        self.logits = nn.Linear(cfg.d_model, self.G * self.V)
        self.codebook = nn.Parameter(torch.randn(self.G, self.V, cfg.d_model // self.G))

    def forward(self, z, tau: float = 1.0):
        B, T, _ = z.shape
        logits = self.logits(z).view(B, T, self.G, self.V)
        if self.training:
            onehot = F.gumbel_softmax(logits.float(), tau=tau, hard=True)          # (B, T, G, V)
        else:
            onehot = F.one_hot(logits.argmax(-1), self.V).float()
        q = torch.einsum("btgv,gvd->btgd", onehot, self.codebook).reshape(B, T, -1)
        avg_probs = logits.softmax(-1).reshape(-1, self.G, self.V).mean(0)         # (G, V)
        return q, avg_probs


@register
class Wav2Vec(nn.Module):
    """The toy wav2vec 2.0. forward(mel (B, n_mels, T), mask (B, T') bool or None) ->
    (z (B, T', D), c (B, T', D)); `features(mel)` -> (B, 2D): the mean and standard deviation of c over
    time (what the probes read)."""

    arch = "wav2vec_toy"
    config_class = Wav2VecConfig

    def __init__(self, config: Wav2VecConfig):
        super().__init__()
        self.config = cfg = config
        self.encoder = FeatureEncoder(cfg)
        self.mask_emb = nn.Parameter(torch.randn(cfg.d_model) * 0.1)
        self.pos_emb = nn.Embedding(cfg.max_frames, cfg.d_model)
        tcfg = TransformerConfig(vocab_size=1, d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads)
        self.blocks = nn.ModuleList([Block(tcfg, causal=False) for _ in range(cfg.n_layers)])
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.quantizer = Quantizer(cfg)
        self.project_c = nn.Linear(cfg.d_model, cfg.proj_dim)   # c -> the space where targets are compared
        self.project_q = nn.Linear(cfg.d_model, cfg.proj_dim)
        self.head = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model), nn.GELU(), nn.Linear(cfg.d_model, cfg.proj_dim))
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def context(self, z, mask=None):
        """z (B, T, D) -> c (B, T, D); frames where `mask` (B, T) is True are replaced by mask_emb first."""
        if z.shape[1] > self.config.max_frames:
            raise ValueError(f"{z.shape[1]} latent frames > max_frames={self.config.max_frames}")
        if mask is not None:
            z = torch.where(mask[..., None], self.mask_emb.to(z.dtype), z)
        x = z + self.pos_emb(torch.arange(z.shape[1], device=z.device))
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def forward(self, mel, mask=None):
        mel = check_mel(mel, self.config.n_mels)
        z = self.encoder(mel)
        return z, self.context(z, mask)

    @torch.no_grad()
    def features(self, mel, batch_size: int = 256) -> np.ndarray:
        """What the probes read: each clip's context vectors pooled over time, mean and standard
        deviation side by side, (B, 2D) as a NumPy array, in eval mode."""
        was = self.training
        self.eval()
        pooled = []
        for i in range(0, len(mel), batch_size):
            c = self(mel[i:i + batch_size])[1]
            pooled.append(torch.cat([c.mean(1), c.std(1)], dim=1))
        out = torch.cat(pooled)
        self.train(was)
        return out.numpy()


def check_mel(mel, n_mels: int | None = None) -> torch.Tensor:
    """A clear error unless `mel` is a non-empty float (B, n_mels, T) tensor; returns it as float32."""
    if not isinstance(mel, torch.Tensor) or not mel.is_floating_point():
        raise TypeError(f"log-mel clips must be a float tensor (B, n_mels, T), got "
                        f"{getattr(mel, 'dtype', type(mel).__name__)}")
    if mel.dim() != 3 or 0 in mel.shape or (n_mels is not None and mel.shape[1] != n_mels):
        raise ValueError(f"expected log-mel (B, {n_mels or 'n_mels'}, T) with B, T >= 1, got {tuple(mel.shape)}")
    return mel.float()


# --- masking ---------------------------------------------------------------------------------------

def span_mask(batch: int, frames: int, p_start: float = 0.13, span: int = 5,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """wav2vec 2.0's masking: each frame starts a masked span of `span` frames with probability
    `p_start` (spans may overlap); (B, T) bool. At least one span per clip."""
    for name, value in (("batch", batch), ("frames", frames), ("span", span)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if not 0.0 <= p_start <= 1.0:
        raise ValueError(f"p_start must be a probability in [0, 1], got {p_start!r}")
    starts = torch.rand(batch, frames, generator=generator) < p_start
    starts[torch.arange(batch), torch.randint(0, frames, (batch,), generator=generator)] = True
    mask = torch.zeros(batch, frames + span, dtype=torch.bool)
    for k in range(span):
        mask[:, k:k + frames] |= starts
    return mask[:, :frames]


# --- objective 1: wav2vec 2.0's masked contrastive loss ---------------------------------------------

def info_nce(pred: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """pred (N, P), targets (N, K+1, P) with the true target at index 0: the mean over N of
    -log softmax_k(cos(pred, target_k) / temperature)[0]."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if pred.dim() != 2 or targets.dim() != 3 or targets.shape[0] != pred.shape[0] or targets.shape[2] != pred.shape[1]:
        raise ValueError(f"pred must be (N, P) and targets (N, K+1, P), got {tuple(pred.shape)} and {tuple(targets.shape)}")
    logits = F.cosine_similarity(pred[:, None], targets, dim=-1) / temperature     # (N, K+1)
    return F.cross_entropy(logits, torch.zeros(len(pred), dtype=torch.long, device=pred.device))


def masked_contrastive_loss(model: Wav2Vec, mel: torch.Tensor, *, targets: str = "quantized", p_start: float = 0.13,
                            span: int = 5, n_distractors: int = 10, temperature: float = 0.1, tau: float = 1.0,
                            diversity_weight: float = 0.1, generator: torch.Generator | None = None):
    """The wav2vec 2.0 objective on log-mel clips (B, n_mels, T) -> (loss, stats).

    targets="quantized": q_t from the Gumbel-softmax quantiser of the *unmasked* z (the paper's);
    targets="stopgrad":  z_t.detach(), the continuous latent (the naive variant: nothing stops the
    encoder from making every z alike, and then the task is trivial: collapse).
    Distractors: `n_distractors` targets at other masked frames of the same clip, drawn uniformly."""
    z = model.encoder(mel)                                            # (B, T, D)
    B, T, _ = z.shape
    mask = span_mask(B, T, p_start, span, generator).to(z.device)
    c = model.context(z, mask)                                        # (B, T, D)
    stats = {}
    if targets == "quantized":
        q, avg_probs = model.quantizer(z, tau)
        tgt = model.project_q(q)
        perplexity = torch.exp(-(avg_probs * torch.log(avg_probs + 1e-7)).sum(-1))   # (G,)
        GV = model.config.n_groups * model.config.n_codes
        diversity = (GV - perplexity.sum()) / GV
        stats["code_perplexity"] = perplexity.sum().item()
    elif targets == "stopgrad":
        tgt, diversity = model.project_q(z.detach()), torch.zeros((), device=z.device)
    else:
        raise ValueError(f"targets must be 'quantized' or 'stopgrad', got {targets!r}")
    pred = model.project_c(c)                                         # (B, T, P)
    b_idx, t_idx = mask.nonzero(as_tuple=True)                        # the N masked frames
    n_masked = mask.sum(1)                                            # (B,)
    # distractors: for each masked frame, other masked frames of the same clip
    offsets = torch.cumsum(n_masked, 0) - n_masked                    # first row of each clip in the N list
    r = torch.rand(len(b_idx), n_distractors, generator=generator).to(z.device)
    count = n_masked[b_idx][:, None]
    pick = (r * (count - 1).clamp(min=1)).long()                      # 0 .. count-2
    own = (torch.arange(len(b_idx), device=z.device) - offsets[b_idx])[:, None]
    pick = pick + (pick >= own).long()                                # skip the frame itself
    pick = torch.minimum(pick, count - 1)
    rows = offsets[b_idx][:, None] + pick                             # (N, K) rows into the N list
    masked_tgt = tgt[b_idx, t_idx]                                    # (N, P)
    candidates = torch.cat([masked_tgt[:, None], masked_tgt[rows]], 1)   # (N, K+1, P)
    contrastive = info_nce(pred[b_idx, t_idx], candidates, temperature)
    loss = contrastive + diversity_weight * diversity
    with torch.no_grad():
        stats.update(contrastive=contrastive.item(), diversity=float(diversity),
                     masked_share=mask.float().mean().item(),
                     target_similarity=F.cosine_similarity(masked_tgt[:, None], masked_tgt[rows], -1).mean().item())
    return loss, stats


# --- objective 2: utterance-level contrastive (SimCLR) ---------------------------------------------

def augment(mel: torch.Tensor, generator: torch.Generator | None = None, band_shift: int = 3, time_shift: int = 20,
            gain_db: float = 6.0, time_mask: int = 15, freq_mask: int = 6) -> torch.Tensor:
    """A random view of each log-mel clip (B, M, T): bands shifted by up to `band_shift` (a pitch
    change), frames rolled by up to `time_shift`, a gain (an added constant, up to +-`gain_db`), a
    random noise floor, one time and one frequency stripe set to the clip's mean."""
    mel = check_mel(mel)
    B, M, T = mel.shape
    g = generator

    def ints(low, high):                                                # (B, 1, 1) random ints in [low, high]
        return torch.randint(low, high + 1, (B, 1, 1), generator=g)

    bands, frames = torch.arange(M)[None, :, None], torch.arange(T)[None, None, :]
    x = mel.gather(1, (bands - ints(-band_shift, band_shift)).clamp(0, M - 1).expand(B, M, T))   # band shift
    x = x.gather(2, ((frames - ints(-time_shift, time_shift)) % T).expand(B, M, T))              # time shift
    x = x + (torch.rand(B, 1, 1, generator=g) * 2 - 1) * gain_db * math.log(10) / 10              # gain
    level = x.mean(dim=(1, 2), keepdim=True)
    floor = level + torch.randn(B, 1, 1, generator=g) * 2 - 1                                     # noise floor
    x = torch.logaddexp(x, floor + 0.5 * torch.randn(B, M, T, generator=g))
    t0, f0 = ints(0, T - time_mask), ints(0, M - freq_mask)
    stripes = ((frames >= t0) & (frames < t0 + ints(0, time_mask))) | \
              ((bands >= f0) & (bands < f0 + ints(0, freq_mask)))
    return torch.where(stripes, x.mean(dim=(1, 2), keepdim=True), x)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: a, b (B, P) two views of the same B clips. Each of the 2B vectors must find its
    partner among the other 2B - 1 by cosine similarity / temperature (cross-entropy, averaged)."""
    x = F.normalize(torch.cat([a, b]), dim=-1)                           # (2B, P)
    sim = x @ x.T / temperature
    sim.fill_diagonal_(float("-inf"))
    B = len(a)
    partner = torch.cat([torch.arange(B, 2 * B), torch.arange(0, B)]).to(a.device)
    return F.cross_entropy(sim, partner)


def utterance_contrastive_loss(model: Wav2Vec, mel: torch.Tensor, *, temperature: float = 0.2,
                               generator: torch.Generator | None = None, **augment_kwargs):
    """SimCLR on whole clips: two augmented views, mean-pooled c, the projection head, NT-Xent."""
    views = [augment(mel, generator, **augment_kwargs) for _ in range(2)]
    h = [model.head(model(v)[1].mean(1)) for v in views]                 # (B, P) each
    loss = nt_xent(h[0], h[1], temperature)
    with torch.no_grad():
        acc = (F.normalize(h[0], dim=-1) @ F.normalize(h[1], dim=-1).T).argmax(1)
        acc = (acc == torch.arange(len(mel))).float().mean().item()
    return loss, {"contrastive": loss.item(), "view_match_accuracy": acc}


# --- pretraining ----------------------------------------------------------------------------------

OBJECTIVES = {"wav2vec": masked_contrastive_loss, "simclr": utterance_contrastive_loss}


def pretrain(model: Wav2Vec, mels: torch.Tensor, *, objective: str = "simclr", steps: int = 1000,
             batch_size: int = 64, lr: float = 2e-3, warmup: int = 50, seed: int = 0, callback=None,
             callback_every: int = 25, **objective_kwargs) -> dict:
    """Pretrain `model` on unlabelled log-mel clips (N, n_mels, T) with `objective` ("wav2vec":
    `masked_contrastive_loss`, or "simclr": `utterance_contrastive_loss`; extra keyword arguments go
    to it). AdamW (weight decay 0.01), linear warm-up then cosine decay, gradient clipping at 1.
    The Gumbel temperature `tau` (wav2vec) anneals from 2 (x0.999 per step, never below 0.5). Returns the history
    {"step": [...], "loss": [...], <stats>: [...]}; `callback(history)` every `callback_every` steps."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {sorted(OBJECTIVES)}, got {objective!r}")
    if steps < 1 or batch_size < 2 or batch_size > len(mels):
        raise ValueError(f"need steps >= 1 and 2 <= batch_size <= {len(mels)} clips; got {steps}, {batch_size}")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(warmup, 1)) *
                                              (0.55 + 0.45 * math.cos(math.pi * min(s, steps) / steps)))
    loss_fn, history = OBJECTIVES[objective], {"step": [], "loss": []}
    model.train()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(mels), (batch_size,), generator=gen)
        kwargs = dict(objective_kwargs)
        if objective == "wav2vec" and "tau" not in kwargs:
            kwargs["tau"] = max(0.5, 2.0 * 0.999 ** step)
        loss, stats = loss_fn(model, mels[idx], generator=gen, **kwargs)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining loss is {loss.item()} at step {step}; lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        history["step"].append(step)
        history["loss"].append(loss.item())
        for k, v in stats.items():
            history.setdefault(k, []).append(v)
        if callback is not None and (step % callback_every == 0 or step == steps):
            callback(history)
    model.eval()
    return history


# --- shipped checkpoints --------------------------------------------------------------------------

RECIPES = {
    # utterance-level contrastive (SimCLR): the recipe that works at this scale
    "speech_simclr": dict(objective="simclr", n_unlabelled=2500, steps=1000, batch_size=64, lr=2e-3, seed=0,
                          kwargs=dict(temperature=0.2)),
    # wav2vec 2.0: masked spans, quantised targets (Gumbel-softmax) + diversity loss
    "speech_wav2vec": dict(objective="wav2vec", n_unlabelled=2500, steps=1000, batch_size=64, lr=2e-3, seed=0,
                           kwargs=dict(targets="quantized")),
    # the same wav2vec 2.0 recipe with three times the steps (and compute): is compute what it lacks?
    "speech_wav2vec_long": dict(objective="wav2vec", n_unlabelled=2500, steps=3000, batch_size=64, lr=2e-3, seed=0,
                                kwargs=dict(targets="quantized")),
    # the naive variant: the same, but the targets are the continuous latents with the gradient stopped
    "speech_w2v_stopgrad": dict(objective="wav2vec", n_unlabelled=2500, steps=1000, batch_size=64, lr=2e-3, seed=0,
                                kwargs=dict(targets="stopgrad")),
}
SHIPPED_SHA256: dict[str, str] = {  # name -> sha256 of data/<name>.safetensors (listed in data/README.md)
    "speech_simclr": "55b1ee8fc990e67fbd5bd8b3cc99ce596fa4c76b23a20d7ede7f5da8c873cc63",
    "speech_wav2vec": "a6c11df86d12b1f9a58a7d8003752a0fd1c6ecbaa75eaa3f130ffa3300d58b84",
    "speech_wav2vec_long": "9edc1756b6e50d4e786a2c1e6ee27b41455f7d3955fc5b41f1c05119d8b921bf",
    "speech_w2v_stopgrad": "e630b86ad6ec2cd41682c4314ce9fe06d22bd36afe406d6999397fa30f0315ab",
}


def run_recipe(name: str, out_dir: str | Path, mels: torch.Tensor | None = None) -> dict:
    """Pretrain recipe `name` from a fresh model (seeded), save data/<name>.safetensors + .json; return meta."""
    from ..checkpoint import save_checkpoint
    from .data import log_mel, unlabelled_corpus

    recipe = RECIPES[name]
    if mels is None:
        waves, _ = unlabelled_corpus(recipe["n_unlabelled"], seed=0)
        mels = log_mel(waves)
    torch.manual_seed(recipe["seed"])
    model = Wav2Vec(Wav2VecConfig())
    t0 = time.perf_counter()
    history = pretrain(model, mels, objective=recipe["objective"], steps=recipe["steps"],
                       batch_size=recipe["batch_size"], lr=recipe["lr"], seed=recipe["seed"], **recipe["kwargs"])
    meta = {"recipe": name, **recipe, "command": f"python -m ptm_lib.speech.wav2vec --name {name} --out {out_dir}",
            "pretrain_seconds": round(time.perf_counter() - t0, 1), "torch_threads": torch.get_num_threads(),
            "curve": {k: [round(float(x), 4) for x in v[::20]] for k, v in history.items()}}
    save_checkpoint(model, Path(out_dir) / name, meta=meta)
    return meta


def load_pretrained(name: str, folder: str | Path | None = None) -> tuple[Wav2Vec, dict]:
    """A shipped checkpoint (sha256 pinned in SHIPPED_SHA256): (model in eval mode, its JSON meta)."""
    from ..checkpoint import load_checkpoint, read_config
    from ..paths import data_dir

    path = Path(folder or data_dir()) / name
    if not Path(f"{path}.json").exists():
        raise FileNotFoundError(f"no checkpoint {path}.json; create it with "
                                f"`python -m ptm_lib.speech.wav2vec --name {name} --out data`")
    meta = read_config(path)["meta"]
    model = load_checkpoint(path, Wav2Vec(Wav2VecConfig(**read_config(path)["config"])),
                            expected_sha256=SHIPPED_SHA256.get(name))
    return model.eval(), meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.speech.wav2vec", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="speech_simclr", choices=sorted(RECIPES))
    parser.add_argument("--out", default="data")
    args = parser.parse_args(argv)
    meta = run_recipe(args.name, args.out)
    print(f"{args.name}: {meta['steps']} steps in {meta['pretrain_seconds']} s; "
          f"final loss {meta['curve']['loss'][-1]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
