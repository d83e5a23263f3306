"""What the optimiser config adds to torch's optimisers: the learning rate's scaling with the batch, and
weight averaging (Polyak / SWA style) from a chosen epoch on.

Why not Lightning's `WeightAveraging` callback (checked with pytorch-lightning 2.6.6): its averaged copy is
made when fitting starts and holds the initial weights until the first update, and the callback swaps that
copy in for every validation and writes it as every checkpoint's `state_dict`, whether or not averaging has
begun. With `optimizer.average_from_epoch=2`, the epochs before 2 were validated on the initial, untrained
weights (a tiny Linear model through the real Trainer: the weights validated at epoch 0 equal the initial
ones, and the checkpoints of epochs 0 and 1 hold them as `state_dict`), so early stopping and the best
checkpoint would judge, and keep, the wrong weights. Keeping the promise (trained weights evaluated and
saved until averaging begins, the average from then on) takes overriding its validation and checkpoint hooks
and reaching into its private `_average_model`: as much code as WeightAverage below and its five calls in
module.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

from ..config.checks import LR_SCALING_RULES


def scaled_learning_rate(lr: float, rule: str, reference_batch_size: int, effective_batch_size: int) -> float:
    """`lr` was tuned for `reference_batch_size` clips per optimiser step; the rate for `effective_batch_size`.
    linear: lr x effective / reference (Goyal et al. 2017, for SGD); sqrt: lr x sqrt(effective / reference)
    (the square-root rule for adaptive optimisers such as AdamW); none: lr as it is."""
    if rule not in LR_SCALING_RULES:
        raise ValueError(f"optimizer.lr_scaling={rule!r}; choose one of {', '.join(LR_SCALING_RULES)}")
    ratio = effective_batch_size / reference_batch_size
    return lr * {"none": 1.0, "linear": ratio, "sqrt": math.sqrt(ratio)}[rule]


class WeightAverage:
    """The running mean of a network's weights over the optimiser steps taken since averaging began: parameters
    and floating-point buffers (BatchNorm's running statistics), with equal weight per step; integer buffers
    (BatchNorm's step counter) stay as trained. `swap` puts the average into the network for evaluation, and
    the trained weights back afterwards."""

    def __init__(self, net: nn.Module, prefix: str = ""):
        self.net, self.prefix = net, prefix
        self.count = 0
        self.average: dict[str, torch.Tensor] = {}

    def _tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in [*self.net.named_parameters(), *self.net.named_buffers()]:
            if tensor.is_floating_point():
                yield self.prefix + name, tensor

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        if not self.average:
            self.average = {name: tensor.detach().clone() for name, tensor in self._tensors()}
            return
        names, tensors = zip(*self._tensors())
        torch._foreach_lerp_([self.average[name] for name in names], list(tensors), 1.0 / self.count)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the network's weights with the average (called twice, everything is back)."""
        for name, tensor in self._tensors():
            held = tensor.detach().clone()
            tensor.copy_(self.average[name])
            self.average[name] = held

    def averaged_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """`state_dict` (of the network's owner, with `prefix`) with the averaged weights in place of the trained."""
        return {
            name: self.average[name].to(value.device) if name in self.average else value
            for name, value in state_dict.items()
        }

    def load(self, averaged_state_dict: dict[str, torch.Tensor], count: int) -> None:
        self.count = count
        self.average = {name: averaged_state_dict[name].detach().clone() for name, _ in self._tensors()}
