"""Images: the course's vision data and what is done to it.

    digits  load_digits (the pinned, fixed split of the 8x8 digits), Split, DIGITS_SHA256
    shift   moved, turned, blurred, noisy or inverted copies of the images (distribution shift)
    resnet  ResNetConfig, ResNet (a small ResNet: residual blocks, batch norm), with_new_head
    simclr  augment, nt_xent (InfoNCE), pretrain (SimCLR), train_classifier, load_pretrained (shipped encoders)
    typeset typeset_digits, load_typeset: digits printed in matplotlib's fonts, made like the 8x8 digits
"""
from .resnet import ResNet, ResNetConfig, with_new_head  # noqa: F401  (registers the "resnet" architecture)
