"""The fine-tuning recipe (chapter 9): one API for any pretrained model, the five steps of the essay's §9.2.

    pretrained = <load a checkpoint>        e.g. text.docstring_bert.load_docstring_bert()[0],
                                            vision.simclr.load_pretrained()[0], or load_checkpoint(path)
    model = with_new_head(pretrained, C)    replace the pretraining head by a fresh C-class head
    result = finetune(model, train, val,    choose what to freeze (Recipe.trainable) and the learning
                      Recipe(lr=3e-4))      rates (lr, head_lr, layer_decay); train with early stopping
                                            on validation; the best weights are restored
    scores = evaluate(model, test)          accuracy, balanced accuracy, macro-F1, per-class recall, loss

A split is (inputs, labels): inputs a tensor X (N, ...) for ``model(x)``, or a tuple such as
``(ids, mask)`` ((N, T) each) for ``model(ids, mask)``; labels (N,) integer class ids.

The models the course ships are understood as stacks of layers, from the input up (`layer_groups`):
a `TransformerClassifier` is [embeddings, block 1, ..., block L]; a `ResNet` is [stem, stage 1, ...].
``Recipe.trainable = k`` trains the top k of them and the head; "head" is a linear probe trained by
gradient descent; "all" is full fine-tuning. ``layer_decay`` < 1 gives each layer lr x decay^(depth
below the top), ULMFiT's discriminative fine-tuning.
"""
from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from .data import check_labels
from .evaluate import _as_tuple, per_class_accuracy, predict
from .train import History, check_positive, classification_loss, fit, warmup_schedule

__all__ = ["Recipe", "Finetuned", "with_new_head", "layer_groups", "set_trainable", "param_groups",
           "class_weights", "finetune", "evaluate"]

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "loss")


@dataclass(frozen=True)
class Recipe:
    """Every choice of a fine-tuning run, with the defaults that work across the course's tasks.

    lr:            learning rate of the pretrained layers (AdamW)
    head_lr:       learning rate of the new head (None: 10 x lr; a fresh layer needs larger steps)
    trainable:     "all", "head" (body frozen), or an int k: the top k layers (and the head) train
    layer_decay:   each layer below the top gets lr x layer_decay^depth (1.0: the same lr everywhere)
    weight_decay:  AdamW's decoupled weight decay
    warmup:        linear warm-up, as a fraction of max_steps
    max_steps:     the most optimizer steps; early stopping usually ends sooner
    batch_size:    examples per step (at most the training set)
    eval_every:    steps between validation measurements
    patience:      stop after this many measurements without a better validation score (None: never)
    metric:        the validation score early stopping and `restore_best` watch (see METRICS)
    class_weight:  None, or "balanced": the loss weighs class c by N / (C * N_c) (for imbalanced labels)
    label_smoothing, grad_clip: as in `torch.nn.functional.cross_entropy` and `ptm_lib.fit`
    """

    lr: float = 3e-4
    head_lr: float | None = None
    trainable: str | int = "all"
    layer_decay: float = 1.0
    weight_decay: float = 0.01
    warmup: float = 0.1
    max_steps: int = 300
    batch_size: int = 32
    eval_every: int = 10
    patience: int | None = 5
    metric: str = "accuracy"
    class_weight: str | None = None
    label_smoothing: float = 0.0
    grad_clip: float | None = 1.0

    def __post_init__(self):
        check_positive(lr=self.lr, head_lr=self.head_lr, max_steps=self.max_steps, batch_size=self.batch_size,
                       eval_every=self.eval_every, patience=self.patience, grad_clip=self.grad_clip)
        if not (self.trainable in ("all", "head") or (isinstance(self.trainable, int) and self.trainable >= 0)):
            raise ValueError(f"trainable must be 'all', 'head' or an int k >= 0 (the top k layers), got {self.trainable!r}")
        if not 0.0 < self.layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup is a fraction of max_steps in [0, 1), got {self.warmup}")
        if self.weight_decay < 0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"need weight_decay >= 0 and label_smoothing in [0, 1), got {self.weight_decay}, "
                             f"{self.label_smoothing}")
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")
        if self.class_weight not in (None, "balanced"):
            raise ValueError(f"class_weight must be None or 'balanced', got {self.class_weight!r}")

    @property
    def head_learning_rate(self) -> float:
        return self.head_lr if self.head_lr is not None else 10 * self.lr


@dataclass
class Finetuned:
    """What `finetune` did. `history.evals` holds the validation curve ("val_accuracy", "val_loss", ...)."""

    model: nn.Module
    history: History
    recipe: Recipe
    best_step: int          # the step whose weights were restored
    best_score: float       # its validation score (Recipe.metric; for "loss", the loss itself)
    steps: int              # steps actually trained (< max_steps when early stopping ended the run)
    trainable_params: int

    @property
    def stopped_early(self) -> bool:
        return self.steps < self.recipe.max_steps


# --- steps 1-2: a pretrained model with a new head ----------------------------------------------

def with_new_head(pretrained: nn.Module, n_classes: int, seed: int = 0) -> nn.Module:
    """A classifier of `n_classes` that starts from `pretrained`'s weights, with a freshly initialised
    head (seeded by `seed`); `pretrained` itself is not changed.

    A `TransformerLM` (a masked-LM) becomes a `TransformerClassifier` (mean pooling); a `ResNet`
    (e.g. SimCLR's, with a projection head) a ResNet classifier; any other model with a `head`
    attribute that is an `nn.Linear` keeps everything but gets a new Linear(in_features, n_classes).
    """
    from .nets.transformer import TransformerClassifier, TransformerLM
    from .vision import resnet

    if not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(pretrained, TransformerLM):
            return TransformerClassifier.from_lm(pretrained, int(n_classes))
        if isinstance(pretrained, resnet.ResNet):
            return resnet.with_new_head(pretrained, int(n_classes))
        head = getattr(pretrained, "head", None)
        if not isinstance(head, nn.Linear):
            raise TypeError(f"{type(pretrained).__name__} has no `head` Linear layer to replace; give it one, "
                            "or pass a TransformerLM or a ResNet")
        model = copy.deepcopy(pretrained)
        model.head = nn.Linear(head.in_features, int(n_classes), bias=head.bias is not None)
        config = getattr(model, "config", None)
        if hasattr(config, "n_classes"):
            model.config = replace(config, n_classes=int(n_classes))
        return model


# --- step 3: what to freeze, and the learning rates ---------------------------------------------

def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The body's parameters as layers from the input up (the head excluded):
    TransformerClassifier -> [embeddings, block 1, ..., block L (with the final LayerNorm)];
    ResNet -> [stem, block 1, ..., block S]; a Hugging Face BERT body (`body.encoder.layer`) ->
    [embeddings, layer 1, ...]."""
    body = getattr(model, "body", None)
    if body is not None and hasattr(body, "blocks"):                      # the course's transformer
        groups = [[p for name, p in body.named_parameters() if name.startswith(("tok_emb", "pos_emb"))]]
        groups += [list(block.parameters()) for block in body.blocks]
        groups[-1] += [p for name, p in body.named_parameters() if name.startswith("ln_f")]
    elif body is not None and hasattr(getattr(body, "encoder", None), "layer"):    # transformers' BERT
        groups = [list(body.embeddings.parameters())] + [list(layer.parameters()) for layer in body.encoder.layer]
        groups[-1] += [p for name, p in body.named_parameters() if name.startswith("pooler")]
    elif hasattr(model, "stem") and hasattr(model, "stages"):            # the course's ResNet
        groups = [list(model.stem.parameters())] + [list(block.parameters()) for block in model.stages]
    else:
        raise TypeError(f"layer_groups does not know the layers of {type(model).__name__}; the recipe "
                        "understands TransformerClassifier, ResNet and Hugging Face BERT bodies")
    head = {id(p) for p in model.head.parameters()}
    if any(id(p) in head for g in groups for p in g):
        raise ValueError("the head's parameters appear among the body's layers")
    return groups


def set_trainable(model: nn.Module, trainable: str | int) -> int:
    """Freeze the body except its top `trainable` layers ("all": none frozen, "head": all frozen);
    the head always trains. Returns the number of trainable parameters."""
    Recipe(trainable=trainable)                  # the same checks as a recipe's
    groups = layer_groups(model)
    k = len(groups) if trainable == "all" else 0 if trainable == "head" else trainable
    if k > len(groups):
        raise ValueError(f"trainable={k} but {type(model).__name__} has only {len(groups)} layers "
                         f"(embeddings/stem and the blocks); use 'all' or an int <= {len(groups)}")
    for i, group in enumerate(groups):
        for p in group:
            p.requires_grad_(i >= len(groups) - k)
    model.head.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def param_groups(model: nn.Module, lr: float, *, layer_decay: float = 1.0, head_lr: float | None = None) -> list[dict]:
    """AdamW parameter groups, head first: the head with `head_lr` (default `lr`), then the layers
    from the top down, the top one with `lr` and each one below with layer_decay x the rate above it
    (layer-wise learning-rate decay, ULMFiT's discriminative fine-tuning). Frozen parameters and
    empty groups are left out."""
    check_positive(lr=lr, head_lr=head_lr)
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay!r}")
    rates = [(head_lr or lr, list(model.head.parameters()))]
    rates += [(lr * layer_decay ** depth, group) for depth, group in enumerate(reversed(layer_groups(model)))]
    groups = []
    for group_lr, params in rates:
        params = [p for p in params if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": group_lr})
    return groups


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """"Balanced" loss weights (C,): N / (C * N_c) for class c, so every class contributes as much
    to the loss as if the labels were balanced (scikit-learn's class_weight="balanced"). A class
    without examples gets weight 0."""
    counts = torch.bincount(torch.as_tensor(labels).long().cpu(), minlength=n_classes).float()
    return torch.where(counts > 0, counts.sum() / (n_classes * counts.clamp(min=1)), torch.zeros(()))


# --- step 4: train with early stopping on validation --------------------------------------------

def _check_split(split, name: str) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    if not (isinstance(split, (tuple, list)) and len(split) == 2):
        raise TypeError(f"{name} must be (inputs, labels), got {type(split).__name__}"
                        f"{f' of length {len(split)}' if isinstance(split, (tuple, list)) else ''}")
    inputs, y = _as_tuple(split[0]), split[1]
    if not isinstance(y, torch.Tensor) or y.dim() != 1 or len(y) != len(inputs[0]) or len(y) == 0:
        raise ValueError(f"{name}: labels must be a non-empty 1-D tensor with one class id per input "
                         f"({len(inputs[0])} inputs), got shape {tuple(getattr(y, 'shape', ()))}")
    return inputs, y


def finetune(model: nn.Module, train, val, recipe: Recipe = Recipe(), *, seed: int = 0,
             device: str | torch.device | None = "cpu", **fit_kwargs) -> Finetuned:
    """Fine-tune `model` (in place) on `train` with the `recipe`, measuring `val` every
    `recipe.eval_every` steps; stop when the validation score has not improved for `recipe.patience`
    measurements, and restore the weights of the best one.

    train, val: (inputs, labels) splits (see the module docstring). Other keyword arguments go to
    `ptm_lib.fit` (progress, live, out, title). Returns a `Finetuned`; the model is left in eval mode.
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a ptm_lib.recipe.Recipe, got {type(recipe).__name__}")
    train_inputs, train_y = _check_split(train, "train")
    n_classes = model.head.out_features
    check_labels(train_y, n_classes, n=len(train_y))
    _check_split(val, "val")
    n_trainable = set_trainable(model, recipe.trainable)
    loader = DataLoader(TensorDataset(*train_inputs, train_y), batch_size=min(recipe.batch_size, len(train_y)),
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(param_groups(model, recipe.lr, layer_decay=recipe.layer_decay,
                                               head_lr=recipe.head_learning_rate), weight_decay=recipe.weight_decay)
    scheduler = warmup_schedule(optimizer, warmup=int(recipe.warmup * recipe.max_steps))
    weight = class_weights(train_y, n_classes) if recipe.class_weight == "balanced" else None
    loss_fn = functools.partial(classification_loss, weight=weight, label_smoothing=recipe.label_smoothing)

    sign = -1.0 if recipe.metric == "loss" else 1.0       # higher is better after the sign
    history = History()
    best = {"score": -math.inf, "state": None, "at": 0, "since": 0}

    def eval_fn(m):                      # runs after the step history.step[-1]
        scores = evaluate(m, val)
        scores.pop("per_class_recall")
        score = sign * scores[recipe.metric]
        if score > best["score"]:
            best.update(score=score, state=copy.deepcopy(m.state_dict()), at=history.step[-1], since=0)
        else:
            best["since"] += 1
        return {f"val_{k}": v for k, v in scores.items()}

    def should_stop(_history: History) -> bool:
        return recipe.patience is not None and best["since"] >= recipe.patience

    fit_kwargs.setdefault("progress", False)
    fit_kwargs.setdefault("live", False)
    history = fit(model, loss_fn, loader, steps=recipe.max_steps, optimizer=optimizer, scheduler=scheduler,
                  grad_clip=recipe.grad_clip, eval_fn=eval_fn, eval_every=recipe.eval_every, device=device,
                  should_stop=should_stop, history=history, **fit_kwargs)
    model.load_state_dict(best["state"])
    model.eval()
    return Finetuned(model, history, recipe, best_step=best["at"], best_score=sign * best["score"],
                     steps=len(history.step), trainable_params=n_trainable)


# --- step 5: evaluate --------------------------------------------------------------------------

def evaluate(model: nn.Module, split, batch_size: int = 1024) -> dict:
    """Scores of `model` on an (inputs, labels) split: accuracy, balanced_accuracy (the mean of the
    per-class recalls), macro_f1, per_class_recall (a list, one per class of the head) and loss (mean
    cross-entropy); every value in [0, 1] but the loss."""
    from sklearn.metrics import f1_score

    inputs, y = _check_split(split, "split")
    logits = predict(model, inputs, batch_size)
    n_classes = logits.shape[-1]
    check_labels(y, n_classes, n=len(y))
    y, pred = y.cpu().long().numpy(), logits.argmax(-1).numpy()
    recall = per_class_accuracy(y, pred, n_classes)
    present = np.unique(y)
    return {"accuracy": float((pred == y).mean()),
            "balanced_accuracy": float(recall[present].mean()),
            "macro_f1": float(f1_score(y, pred, labels=present, average="macro", zero_division=0)),
            "per_class_recall": recall.tolist(),
            "loss": F.cross_entropy(logits, torch.as_tensor(y)).item()}

