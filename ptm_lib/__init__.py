"""ptm_lib: the shared library of the ptm-course (pre-trained models, interactively).

One module per concern:
    device      pick_device, autocast, environment_info
    seeding     seed_everything
    data        load_digits, per_class_subset, make_loader, fetch (checksummed)
    models      MLP, the architecture registry (build a model from a checkpoint's JSON)
    text        a synthetic language, its tokenizer, labelled tasks (topic, word order)
    transformer TransformerLM (encoder/decoder), TransformerClassifier, EncoderDecoder
    objectives  masked LM (BERT 80/10/10), causal LM, span-corruption denoising
    pretrain    pretraining on unlabelled text; the shipped checkpoint (python -m ptm_lib.pretrain)
    finetune    scratch / linear probe / partial unfreezing / full fine-tuning
    lstm        LSTM encoder/decoder, sequence autoencoder and LM objectives, LSTM classifier
    shift       image shifts and corruptions of the digits (distribution shift)
    train       fit, History, classification_loss, NonFiniteLossError
    evaluate    predict, accuracy, confusion, per_class_accuracy
    checkpoint  save_checkpoint, load_checkpoint (safetensors + JSON, never pickle)
    report      Report (numbers and claims -> build/results/<notebook>.json), is_smoke
    viz         LivePlot, history_figure, experiment_panel, show_source
    exercises   check() for auto-checked exercises
    course      the headless course runner: python -m ptm_lib.course run [--smoke] [--seed N]
"""
from .checkpoint import CheckpointMismatchError, load_checkpoint, save_checkpoint
from .data import load_digits, make_loader, per_class_subset
from .device import autocast, environment_info, pick_device
from .evaluate import accuracy, predict
from .models import MLP, MLPConfig, count_params
from .report import ClaimFailed, Report, is_smoke
from .seeding import seed_everything
from .train import History, NonFiniteLossError, classification_loss, fit

__version__ = "0.1.0"
