"""ptm_lib: the shared library of the ptm-course (pre-trained models, interactively).

One module per concern:
    device      pick_device, autocast, environment_info
    seeding     seed_everything
    data        per_class_subset, make_loader, check_labels, sha256_file, fetch (checksummed)
    vision/     digits (load_digits: the pinned 8x8 digits split), shift (distribution shift)
    nets/       registry (register, build, config <-> dict), common, mlp, transformer, lstm
    text/       a synthetic language, its tokenizer, tasks, pretraining objectives, fine-tuning
    train       fit, lr_factor, warmup_schedule, History, classification_loss, NonFiniteLossError
    evaluate    predict, accuracy, confusion, per_class_accuracy (any model, tensor or (ids, mask) inputs)
    recipe      the fine-tuning recipe: Recipe, with_new_head, finetune (early stopping), evaluate
    checkpoint  save_checkpoint, load_checkpoint (safetensors + JSON, never pickle); save_state, load_state
    report      Report (numbers and claims -> build/results/<notebook>.json), is_smoke
    viz         LivePlot, history_figure, experiment_panel, show_source
    exercises   check() for auto-checked exercises
    course      the headless course runner: python -m ptm_lib.course run [--smoke] [--seed N]
    offline     refuse every network connection but loopback (the runner's kernels run this way)

``import ptm_lib`` stays light (no matplotlib, no text code); sub-modules such as ``ptm_lib.viz``
are imported on first use.
"""
import importlib
import sys

from .checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from .data import make_loader, per_class_subset
from .device import autocast, environment_info, pick_device
from .evaluate import accuracy, predict
from .nets.common import count_params
from .nets.mlp import MLP, MLPConfig
from .report import ClaimFailed, Report, is_smoke
from .seeding import seed_everything
from .train import History, NonFiniteLossError, classification_loss, fit
from .vision.digits import load_digits

__version__ = "0.1.0"

_SUBMODULES = ("device", "seeding", "data", "vision", "nets", "text", "train", "evaluate", "recipe", "checkpoint",
               "report", "viz", "exercises", "course", "offline")

if "ipykernel" in sys.modules:  # in a notebook, viz registers how bare matplotlib Figures are shown
    from . import viz  # noqa: F401


def __getattr__(name: str):
    """``ptm.viz``, ``ptm.text``, ...: import a sub-module the first time it is used."""
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
