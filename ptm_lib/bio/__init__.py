"""Biological sequences.

    dna        synthetic promoters (two motifs and their spacing set the class), the DNA tokenizer,
               k-mer counts (the classic baseline)
    convlm     a dilated convolutional masked language model for DNA (GPN-style) and its classifier
    pretrain   masked-LM pretraining of it (python -m ptm_lib.bio.pretrain), the shipped checkpoint,
               masked-base accuracy inside and outside the motifs
"""
