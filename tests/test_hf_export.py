"""ptm_lib.nets.hf_export: the course's encoder runs in transformers (MegatronBERT) with the same outputs."""
import pytest
import torch

from ptm_lib.checkpoint import load_checkpoint, save_checkpoint
from ptm_lib.nets import hf_export
from ptm_lib.nets.transformer import TransformerConfig, TransformerLM
from ptm_lib.text.objectives import mask_tokens, masked_lm_loss

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert_head_model():
    torch.manual_seed(0)
    return TransformerLM(TransformerConfig(vocab_size=60, max_len=12, d_model=16, n_layers=2, n_heads=4,
                                           mlm_head="bert")).eval()


def batch(vocab=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (4, 10), generator=g)
    mask = torch.ones_like(ids, dtype=torch.bool)
    mask[0, 6:] = False
    ids[~mask] = 0
    return ids, mask


def test_masked_lm_logits_and_loss_match_transformers(bert_head_model):
    ids, mask = batch()
    hf = hf_export.to_transformers(bert_head_model)
    assert type(hf).__name__ == "MegatronBertForMaskedLM"
    inputs, labels = mask_tokens(ids, 60, 0.3, mask_id=4, special_ids=[0, 1, 2, 3, 4],
                                 generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = bert_head_model(inputs, mask)
        theirs = hf(input_ids=inputs, attention_mask=mask.long(), labels=labels)
        assert (ours - theirs.logits)[mask].abs().max() < 1e-5
        assert abs(float(masked_lm_loss(bert_head_model, inputs, labels, mask)) - float(theirs.loss)) < 1e-5


def test_the_shipped_mini_bert_encoder_matches_megatron_bert():
    from ptm_lib.text.pretrain import load_pretrained
    lm, tok, lang, _ = load_pretrained("mini_bert")
    ids, mask = tok.encode_batch(lang.corpus(6, seed=3), max_len=32)
    hf = hf_export.to_transformers(lm)
    assert type(hf).__name__ == "MegatronBertModel"       # its head is the plain linear one: encoder only
    with torch.no_grad():
        diff = (lm.encode(ids, mask) - hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state)[mask]
    assert diff.abs().max() < 1e-5


def test_the_check_can_fail(bert_head_model):
    hf = hf_export.to_transformers(bert_head_model)
    with torch.no_grad():
        hf.bert.encoder.layer[0].attention.self.key.weight[0, 0] += 0.5   # one wrong number in the mapping
        ids, mask = batch()
        assert (bert_head_model(ids, mask) - hf(input_ids=ids, attention_mask=mask.long()).logits)[mask].abs().max() > 1e-4


def test_export_folder_reloads_with_auto_classes(bert_head_model, tmp_path):
    from transformers import AutoModelForMaskedLM
    folder = hf_export.export_transformers(bert_head_model, tmp_path / "hf")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors"}
    reloaded = AutoModelForMaskedLM.from_pretrained(folder).eval()
    ids, mask = batch()
    with torch.no_grad():
        assert (bert_head_model(ids, mask) - reloaded(input_ids=ids, attention_mask=mask.long()).logits)[mask].abs().max() < 1e-5
    with pytest.raises(FileExistsError, match="not empty"):
        hf_export.export_transformers(bert_head_model, folder)


def test_bert_head_option_round_trips_and_is_checked(bert_head_model, tmp_path):
    save_checkpoint(bert_head_model, tmp_path / "m")
    again = load_checkpoint(tmp_path / "m").eval()
    ids, mask = batch()
    with torch.no_grad():
        assert torch.equal(again(ids, mask), bert_head_model(ids, mask))
    assert again.lm_head.weight is again.body.tok_emb.weight       # still tied
    with pytest.raises(ValueError, match="mlm_head must be"):
        TransformerConfig(vocab_size=10, mlm_head="gpt")
    with pytest.raises(TypeError, match="bidirectional"):
        hf_export.to_transformers(TransformerLM(TransformerConfig(vocab_size=10, causal=True)))
