"""Chapter 8: the trends and challenges of pre-trained models, each as code that is measured.

    compression     int8 quantisation, magnitude pruning, knowledge distillation; size and latency
    adaptation      optimisers and schedules for fine-tuning, layer-wise learning rates, LoRA (by hand and with peft)
    privacy         membership-inference attacks and DP-SGD (with Opacus)
    multimodal      CLIP-style contrastive image-caption training (LiT), zero-shot prompts, retrieval
    search          architecture search under a parameter budget with Optuna (TPE, pruning), Pareto fronts
    interpret       attributions (with Captum), attention maps, probes per layer
    compute         FLOPs, activation memory, accumulation, checkpointing, precision, scaling laws
    distributed     data-parallel pretraining under torchrun (DistributedDataParallel)
"""
