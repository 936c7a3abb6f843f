"""The course's encoder in Hugging Face format, so `transformers` can load and run it.

The course's `TransformerLM` encoder is a *pre-LayerNorm* BERT: LayerNorm before attention and
before the MLP, one final LayerNorm, learned absolute positions, no LayerNorm on the embeddings,
exact GELU. `transformers`' `BertModel` is post-LayerNorm (LayerNorm after each residual sum), a
different function; its pre-LayerNorm sibling `MegatronBertModel` (Shoeybi et al. 2019) has exactly
the course's structure. The mapping, layer by layer:

    course                                 MegatronBERT
    body.tok_emb / body.pos_emb            bert.embeddings.word_embeddings / position_embeddings
    (no segment embeddings)                bert.embeddings.token_type_embeddings = 0 (one type)
    body.blocks[i].ln1                     bert.encoder.layer[i].attention.ln
    body.blocks[i].attn.qkv (3D, D)        attention.self.query / key / value (rows 0:D, D:2D, 2D:3D)
    body.blocks[i].attn.proj               attention.output.dense
    body.blocks[i].ln2                     bert.encoder.layer[i].ln
    body.blocks[i].mlp[0] / mlp[2]         intermediate.dense / output.dense
    body.ln_f                              bert.encoder.ln
    lm_head (mlm_head="bert")              cls.predictions.transform.dense / .LayerNorm, decoder, bias

BERT's masked-LM head transforms the hidden state (dense, GELU, LayerNorm) before the decoder; the
course's default head is the decoder alone (`mlm_head="linear"`), so such models export as a
`MegatronBertModel` (the encoder, no head); `TransformerConfig(mlm_head="bert")` models export as a
whole `MegatronBertForMaskedLM`. LayerNorm epsilon 1e-5 (PyTorch's default) instead of BERT's 1e-12.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .transformer import TransformerLM


def megatron_config(model: TransformerLM):
    """The `transformers.MegatronBertConfig` of the same architecture as `model`."""
    from transformers import MegatronBertConfig

    c = model.config
    if not isinstance(model, TransformerLM) or c.causal:
        raise TypeError(f"only a bidirectional TransformerLM (an encoder) maps to MegatronBERT, got "
                        f"{type(model).__name__}{' (causal)' if getattr(c, 'causal', False) else ''}")
    return MegatronBertConfig(vocab_size=c.vocab_size, hidden_size=c.d_model, num_hidden_layers=c.n_layers,
                              num_attention_heads=c.n_heads, intermediate_size=c.d_ff, hidden_act="gelu",
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              max_position_embeddings=c.max_len, type_vocab_size=1, layer_norm_eps=1e-5,
                              pad_token_id=c.pad_id, tie_word_embeddings=c.tie_weights)


def megatron_state_dict(model: TransformerLM, prefix: str = "bert.") -> dict[str, torch.Tensor]:
    """The weights of `model` under MegatronBERT's names (see the module docstring); with an LM head
    when `model.config.mlm_head == "bert"`. `prefix`: "bert." for ...ForMaskedLM, "" for the bare model."""
    c, body = model.config, model.body
    D = c.d_model
    sd = {f"{prefix}embeddings.word_embeddings.weight": body.tok_emb.weight,
          f"{prefix}embeddings.position_embeddings.weight": body.pos_emb.weight,
          f"{prefix}embeddings.token_type_embeddings.weight": torch.zeros(1, D),
          f"{prefix}encoder.ln.weight": body.ln_f.weight, f"{prefix}encoder.ln.bias": body.ln_f.bias}
    for i, block in enumerate(body.blocks):
        layer = f"{prefix}encoder.layer.{i}."
        W, b = block.attn.qkv.weight, block.attn.qkv.bias
        for j, name in enumerate(("query", "key", "value")):
            sd[f"{layer}attention.self.{name}.weight"] = W[j * D:(j + 1) * D]
            sd[f"{layer}attention.self.{name}.bias"] = b[j * D:(j + 1) * D]
        sd.update({f"{layer}attention.ln.weight": block.ln1.weight, f"{layer}attention.ln.bias": block.ln1.bias,
                   f"{layer}attention.output.dense.weight": block.attn.proj.weight,
                   f"{layer}attention.output.dense.bias": block.attn.proj.bias,
                   f"{layer}ln.weight": block.ln2.weight, f"{layer}ln.bias": block.ln2.bias,
                   f"{layer}intermediate.dense.weight": block.mlp[0].weight,
                   f"{layer}intermediate.dense.bias": block.mlp[0].bias,
                   f"{layer}output.dense.weight": block.mlp[2].weight, f"{layer}output.dense.bias": block.mlp[2].bias})
    if c.mlm_head == "bert":
        head = model.lm_head
        sd.update({"cls.predictions.transform.dense.weight": head.dense.weight,
                   "cls.predictions.transform.dense.bias": head.dense.bias,
                   "cls.predictions.transform.LayerNorm.weight": head.norm.weight,
                   "cls.predictions.transform.LayerNorm.bias": head.norm.bias,
                   "cls.predictions.decoder.weight": head.weight,
                   "cls.predictions.bias": head.bias, "cls.predictions.decoder.bias": head.bias})
    return {k: v.detach().clone().contiguous() for k, v in sd.items()}


def to_transformers(model: TransformerLM):
    """A `transformers` model computing the same function as `model`, in eval mode:
    `MegatronBertForMaskedLM` when model.config.mlm_head == "bert", else `MegatronBertModel`
    (whose `last_hidden_state` equals `model.encode`)."""
    from transformers import MegatronBertForMaskedLM, MegatronBertModel

    config = megatron_config(model)
    with_head = model.config.mlm_head == "bert"
    hf = (MegatronBertForMaskedLM(config) if with_head else MegatronBertModel(config, add_pooling_layer=False))
    weights = megatron_state_dict(model, prefix="bert." if with_head else "")
    missing, unexpected = hf.load_state_dict(weights, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"the mapping to MegatronBERT is incomplete: missing {missing}, unexpected {unexpected}")
    return hf.eval()


def export_transformers(model: TransformerLM, folder: str | Path) -> Path:
    """Write `model` as a Hugging Face folder (config.json + model.safetensors) that
    `transformers.AutoModel(ForMaskedLM).from_pretrained(folder)` loads. Returns the folder."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty; choose a new folder (nothing is overwritten)")
    to_transformers(model).save_pretrained(folder, safe_serialization=True)
    return folder


def tokenizer_to_transformers(tokenizer):
    """The course's `WordTokenizer` as a `transformers.PreTrainedTokenizerFast` with the same ids:
    a word-level `tokenizers` model on the same vocabulary, split on whitespace, "[CLS]" first.
    With it, `transformers`' own tools (pipelines, `save_pretrained`) run on exported models."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from ..text.tokenizer import CLS, MASK, PAD, SEP, UNK

    vocab = {word: i for i, word in enumerate(tokenizer.vocab)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single=f"{CLS} $A", pair=f"{CLS} $A {SEP} $B",
                                                        special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])])
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token=UNK, pad_token=PAD, cls_token=CLS,
                                   sep_token=SEP, mask_token=MASK)
