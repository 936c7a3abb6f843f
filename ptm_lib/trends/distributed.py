"""Data-parallel pretraining under torchrun: DistributedDataParallel and a DistributedSampler.

    torchrun --standalone --nproc_per_node 2 -m ptm_lib.trends.distributed --steps 40 --out build/ddp
    python -m ptm_lib.trends.distributed --emulate 2 --steps 40 --out build/ddp_emulated

Every process (a *rank*) holds a full replica of the model. At each step each rank takes its own
share of the global batch (`DistributedSampler` deals the shuffled examples out to the ranks),
computes the masked-LM loss and its gradients on that share, and DDP averages the gradients over
the ranks (an all-reduce, overlapped with the backward pass) before every rank takes the same
optimizer step. So the replicas stay identical, and one step of W ranks with B/W examples each is
one step of batch B. Backend: gloo on CPU, NCCL on CUDA.

`--emulate W` runs the same W shards one after the other in ONE process and accumulates their
gradients (each loss divided by W): that is what DDP computes, so the two runs must agree
(tests/test_distributed.py launches torchrun with 2 CPU processes and checks it).

Models too big for one device need their parameters, gradients and optimizer state sharded across
ranks instead of replicated (ZeRO, PyTorch's FSDP): see notebook 08g.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ..nets.common import trim_padding
from ..text.language import LanguageConfig, SyntheticLanguage
from ..text.objectives import mask_tokens, masked_lm_loss
from ..text.pretrain import build_model, corpus_tensors
from ..text.tokenizer import WordTokenizer
from ..train import check_positive, warmup_schedule


class MaskedLMStep(nn.Module):
    """The masked-LM loss as a module's forward.

    DDP synchronises the gradients of the work done inside its own forward call, and
    `masked_lm_loss` calls the encoder and the LM head directly, so the loss is wrapped here.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """inputs, labels, attention_mask: (B, T) from `mask_tokens` -> scalar loss."""
        return masked_lm_loss(self.model, inputs, labels, attention_mask)


class ShardBatches:
    """The batches one rank sees: its share of each global batch, a new shuffle every epoch.

    `DistributedSampler` shuffles all examples with `seed + epoch` (the same on every rank) and gives
    rank r the positions r, r + W, r + 2W, ...; so together the W shards of a step are one global
    batch of W * batch_per_rank examples, each example in exactly one shard.
    """

    def __init__(self, dataset, *, world_size: int, rank: int, batch_per_rank: int, seed: int):
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                          seed=seed, drop_last=True)
        self.loader = DataLoader(dataset, batch_size=batch_per_rank, sampler=self.sampler, drop_last=True)
        if len(self.loader) == 0:
            raise ValueError(f"{len(dataset)} examples cannot fill one batch of {batch_per_rank} on each "
                             f"of {world_size} ranks; use more data or a smaller batch")
        self.epoch, self._it = 0, None

    def next(self):
        while True:
            if self._it is None:
                self.sampler.set_epoch(self.epoch)   # without it every epoch repeats the same order
                self._it, self.epoch = iter(self.loader), self.epoch + 1
            try:
                return next(self._it)
            except StopIteration:
                self._it = None


def parameters_sha256(model: nn.Module) -> str:
    """A fingerprint of every parameter's exact bytes: equal replicas have equal fingerprints."""
    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(p.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def pretrain_data_parallel(*, steps: int = 40, global_batch: int = 32, lr: float = 3e-3, warmup: int = 5,
                           mask_p: float = 0.15, seed: int = 0, n_sentences: int = 2000, emulate: int = 1,
                           d_model: int = 32, n_layers: int = 2, n_heads: int = 4, max_len: int = 16) -> dict:
    """Masked-LM pretraining of a small encoder, data-parallel.

    Inside a process group (torchrun) every rank trains its shard under DDP; otherwise one process
    runs `emulate` shards one after the other with gradient accumulation. Returns a dict with the
    global loss of every step (the mean of the shards' losses), the parameters' fingerprint, the
    world size, this process's rank, and the final model (key "model").
    """
    check_positive(steps=steps, global_batch=global_batch, lr=lr, emulate=emulate)
    distributed = dist.is_available() and dist.is_initialized()
    world, rank = (dist.get_world_size(), dist.get_rank()) if distributed else (emulate, 0)
    if distributed and emulate != 1:
        raise ValueError("emulate is for a single process; under torchrun the ranks are the shards")
    if global_batch % world:
        raise ValueError(f"global_batch {global_batch} must be a multiple of the {world} ranks")
    lang = SyntheticLanguage(LanguageConfig())
    tokenizer = WordTokenizer.from_language(lang)
    dataset = TensorDataset(*corpus_tensors(lang, tokenizer, n_sentences, seed, max_len))   # the same on every rank
    device = (torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if distributed and torch.cuda.is_available()
              else torch.device("cpu"))   # one GPU per rank under NCCL; CPU (gloo) otherwise
    torch.manual_seed(seed)   # the same initial weights everywhere (DDP also broadcasts rank 0's)
    model = build_model("mlm", len(tokenizer), d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                        max_len=max_len).to(device)
    step_module = MaskedLMStep(model)
    if distributed:
        step_module = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None)
    shards = [rank] if distributed else list(range(world))
    batches = {r: ShardBatches(dataset, world_size=world, rank=r, batch_per_rank=global_batch // world, seed=seed)
               for r in shards}
    maskers = {r: torch.Generator().manual_seed(seed * 1000 + r) for r in shards}   # rank r's masking
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    scheduler = warmup_schedule(optimizer, warmup=min(warmup, steps), total=steps)
    losses = []
    model.train()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss_sum = torch.zeros((), device=device)
        for r in shards:
            ids, mask = trim_padding(*batches[r].next())
            inputs, labels = mask_tokens(ids, tokenizer, mask_p, generator=maskers[r])
            loss = step_module(inputs.to(device), labels.to(device), mask.to(device)) / len(shards)   # DDP divides by the world size itself
            loss.backward()
            loss_sum += loss.detach()
        if distributed:
            dist.all_reduce(loss_sum)                     # sum of the ranks' losses
            loss_sum /= world
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss_sum))
    model.eval()
    return {"world_size": world, "rank": rank, "distributed": distributed, "losses": losses,
            "parameters_sha256": parameters_sha256(model), "model": model}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ptm_lib.trends.distributed", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--emulate", type=int, default=1, help="shards to run in this one process (no torchrun)")
    parser.add_argument("--out", default="build/ddp", help="folder for rank<r>.json (losses, fingerprint)")
    args = parser.parse_args(argv)
    launched = "WORLD_SIZE" in os.environ    # torchrun sets WORLD_SIZE, RANK, MASTER_ADDR, ...
    if launched:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        result = pretrain_data_parallel(steps=args.steps, global_batch=args.global_batch, seed=args.seed,
                                        emulate=args.emulate)
    finally:
        if launched:
            dist.destroy_process_group()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {k: v for k, v in result.items() if k != "model"}
    (out / f"rank{result['rank']}.json").write_text(json.dumps(summary, indent=1))
    if result["rank"] == 0:
        print(f"world size {result['world_size']} ({'DDP' if result['distributed'] else 'one process'}): "
              f"loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f} in {args.steps} steps; "
              f"parameters sha256 {result['parameters_sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
