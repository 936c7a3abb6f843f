"""The papers and books the course relies on, with their exact titles (chapter 7 shows them).

Each entry: authors (first author et al. when more than two), year, title, where it appeared, and an
identifier to find it (arXiv id, DOI or ISBN). `ESSAY_CITATIONS` lists what the essay's §7 printed
and which entry it should have named.
"""
from __future__ import annotations

REFERENCES: dict[str, dict[str, str]] = {
    "bert": dict(authors="Devlin, Chang, Lee & Toutanova", year="2019",
                 title="BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
                 venue="NAACL-HLT 2019", id="arXiv:1810.04805"),
    "imagenet": dict(authors="Deng, Dong, Socher, Li, Li & Fei-Fei", year="2009",
                     title="ImageNet: A Large-Scale Hierarchical Image Database", venue="CVPR 2009",
                     id="doi:10.1109/CVPR.2009.5206848"),
    "transformer": dict(authors="Vaswani et al.", year="2017", title="Attention Is All You Need",
                        venue="NeurIPS 2017", id="arXiv:1706.03762"),
    "resnet": dict(authors="He, Zhang, Ren & Sun", year="2016", title="Deep Residual Learning for Image Recognition",
                   venue="CVPR 2016", id="arXiv:1512.03385"),
    "wav2vec2": dict(authors="Baevski, Zhou, Mohamed & Auli", year="2020",
                     title="wav2vec 2.0: A Framework for Self-Supervised Learning of Speech Representations",
                     venue="NeurIPS 2020", id="arXiv:2006.11477"),
    "ulmfit": dict(authors="Howard & Ruder", year="2018", title="Universal Language Model Fine-tuning for Text Classification",
                   venue="ACL 2018", id="arXiv:1801.06146"),
    "dai_le": dict(authors="Dai & Le", year="2015", title="Semi-supervised Sequence Learning", venue="NeurIPS 2015",
                   id="arXiv:1511.01432"),
    "simclr": dict(authors="Chen, Kornblith, Norouzi & Hinton", year="2020",
                   title="A Simple Framework for Contrastive Learning of Visual Representations", venue="ICML 2020",
                   id="arXiv:2002.05709"),
    "distilbert": dict(authors="Sanh, Debut, Chaumond & Wolf", year="2019",
                       title="DistilBERT, a distilled version of BERT: smaller, faster, cheaper and lighter",
                       venue="NeurIPS 2019 EMC² workshop", id="arXiv:1910.01108"),
    "lora": dict(authors="Hu et al.", year="2022", title="LoRA: Low-Rank Adaptation of Large Language Models",
                 venue="ICLR 2022", id="arXiv:2106.09685"),
    "clip": dict(authors="Radford et al.", year="2021",
                 title="Learning Transferable Visual Models From Natural Language Supervision", venue="ICML 2021",
                 id="arXiv:2103.00020"),
    "megatron": dict(authors="Shoeybi et al.", year="2019",
                     title="Megatron-LM: Training Multi-Billion Parameter Language Models Using Model Parallelism",
                     venue="arXiv", id="arXiv:1909.08053"),
    "deep_learning_book": dict(authors="Goodfellow, Bengio & Courville", year="2016", title="Deep Learning",
                               venue="MIT Press", id="ISBN 978-0262035613"),
    "dl_with_python": dict(authors="Chollet", year="2017 (2nd ed. 2021)", title="Deep Learning with Python",
                           venue="Manning", id="ISBN 978-1617294433"),
    "slp": dict(authors="Jurafsky & Martin", year="2009 (3rd ed. draft online)", title="Speech and Language Processing",
                venue="Prentice Hall", id="ISBN 978-0131873216"),
}

ESSAY_CITATIONS = [  # (essay section, what the essay printed, the entry it means, what was wrong)
    ("§7.3", "“BERT: Pre-training of Deep Neural Networks for Language Understanding”", "bert",
     "the title says *Deep Bidirectional Transformers*, not Deep Neural Networks"),
    ("§7.3", "“An Image Data Set of 32 Million 3D Faces” (for ImageNet)", "imagenet",
     "that is not the ImageNet paper: ImageNet is a database of labelled photographs (3.2 million in the 2009 paper, over 14 million today), not 3D faces"),
    ("§7.3", "“Transformer: A Novel Architecture for Neural Networks”", "transformer",
     "no paper has this title; the Transformer was introduced in *Attention Is All You Need*"),
    ("§7.1", "《自然语言处理原理》 by Jurafsky & Martin", "slp",
     "their book is *Speech and Language Processing* (《自然语言处理综论》 in Chinese)"),
]


def cite(key: str) -> str:
    """A one-line citation: 'Authors (year). Title. Venue. id'."""
    if key not in REFERENCES:
        raise KeyError(f"no reference {key!r}; known: {sorted(REFERENCES)}")
    r = REFERENCES[key]
    return f"{r['authors']} ({r['year']}). *{r['title']}*. {r['venue']}. {r['id']}"
