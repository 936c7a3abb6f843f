"""Chapter 8: the trends and challenges of pre-trained models, each as code that is measured.

    compression     int8 quantisation, magnitude pruning, knowledge distillation; size and latency
    adaptation      optimisers and schedules for fine-tuning, layer-wise learning rates, LoRA (by hand and with peft)
    privacy         membership-inference attacks and DP-SGD (with Opacus)
    interpret       attributions (with Captum), attention maps, probes per layer
    distributed     data-parallel pretraining under torchrun (DistributedDataParallel)
"""
