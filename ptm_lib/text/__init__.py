"""Text: a synthetic language, its tokenizer and tasks, and what we pretrain and fine-tune on it.

    language     SyntheticLanguage, LanguageConfig: topics, sub-topics, Zipf words, ambiguity, mixing
    tokenizer    WordTokenizer with BERT's special tokens ([PAD] [UNK] [CLS] [SEP] [MASK])
    tasks        LabelledTask (train pool / val / test / unseen splits), budgets, label noise;
                 make_topic_task, make_agent_task (needs word order)
    objectives   masked LM (BERT 80/10/10), causal LM, span-corruption denoising
    diagnostics  label-free tests of a pretrained encoder: embedding purity, cloze
    pretrain     pretraining with `ptm_lib.train.fit`; the shipped mini-BERT
                 (python -m ptm_lib.text.pretrain; load_pretrained)
    finetune     scratch / probe / random-encoder probe / partial / full fine-tuning, with
                 hyper-parameters chosen on the validation split
    minilm       a real pre-trained model: all-MiniLM-L6-v2 from the installed package (sha256-checked,
                 offline) through Hugging Face transformers; mean-pooled sentence embeddings
    docstrings   real English: docstring summaries of numpy/scipy/torch/sklearn/matplotlib in 8 topics
                 (docstring_corpus, make_docstring_task)

    qa           extractive question answering: three-sentence documents whose answer only meaning finds,
                 start/end heads on an encoder (SpanQA), SQuAD exact match and token F1 (chapter 6e)
    translation  a second language (mirrored words, verb last), parallel and monolingual text, an
                 encoder-decoder pretrained by denoising (python -m ptm_lib.text.translation), BLEU

    docstring_bert  the course's own small BERT, pretrained by masked-LM on the docstrings' prose
                 (python -m ptm_lib.text.docstring_bert; load_docstring_bert)

`minilm`, `docstrings`, `docstring_bert`, `qa` and `translation` are not imported here (import them by name): transformers and the scipy /
sklearn sub-packages load only when a lesson uses them.
"""
from .language import LanguageConfig, SyntheticLanguage
from .tasks import LabelledTask, budget_indices, make_agent_task, make_topic_task
from .tokenizer import WordTokenizer

__all__ = ["LanguageConfig", "SyntheticLanguage", "WordTokenizer", "LabelledTask", "budget_indices",
           "make_topic_task", "make_agent_task"]
