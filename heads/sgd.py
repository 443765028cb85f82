"""SGD with momentum, step for step as torch.optim.SGD computes it, without importing torch.optim.

Constructing any torch.optim optimizer imports torch._dynamo, which costs more than train-head's whole
training loop. This is torch's single-tensor SGD (the one it uses for CPU tensors), for the
options train-head has; a test checks that it gives the same parameters bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


class MomentumSGD:
    """torch.optim.SGD(params, lr, momentum, weight_decay) with dampening 0, no Nesterov, gradients set to None."""

    def __init__(
        self, params: Iterable[torch.nn.Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self._buffers: list[torch.Tensor | None] = [None] * len(self.params)

    def zero_grad(self) -> None:
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for index, param in enumerate(self.params):
            if param.grad is None:
                continue
            grad = param.grad
            if self.weight_decay != 0:
                grad = grad.add(param, alpha=self.weight_decay)
            if self.momentum != 0:
                buffer = self._buffers[index]
                if buffer is None:
                    buffer = self._buffers[index] = grad.detach().clone()
                else:
                    buffer.mul_(self.momentum).add_(grad, alpha=1)
                grad = buffer
            param.add_(grad, alpha=-self.lr)
