"""Many SGD heads trained as one batched computation: what makes a sweep cost about as much as a few single heads.

Heads that share a seed, a batch size and a number of epochs get the same Xavier init and see the same
batches in the same order when train-head trains them alone (both come from the seeded generator), so
their weights are stacked into one (H, C, D) tensor and every batch updates all of them at once, with
per-head learning rate, momentum, weight decay and class weights.

Each stacked head equals, bit for bit, the head heads.train.train_sgd trains alone with its setting
(tests/test_sweep_stacked.py): every step is computed by the kernels train_sgd's autograd and
its SGD step (heads/sgd.py) use, batched over heads where the batched kernel rounds the same way (checked, not
assumed): the forward as one addmm per head (baddbmm), cross-entropy's gradient through the same
nll_loss and log_softmax backward kernels, and SGD's `add(alpha=)` (one rounding) as addcmul with a
per-head scalar. This matters beyond tidiness: at large learning rates SGD on these features is chaotic,
and a last-bit difference grows into a different head within a few epochs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader

from headstart.heads.config import TrainConfig
from headstart.heads.train import _one_thread
from headstart.heads.weighting import class_weights

_MEAN, _NO_IGNORED = 1, -100  # nll_loss's reduction="mean" and ignore_index, as cross_entropy passes them


def group_key(setting: TrainConfig) -> tuple[int, int, int]:
    """What stacked heads must share: the same init and the same batches."""
    return setting.seed, setting.batch_size, setting.epochs


def _per_head(values: list[float]) -> torch.Tensor:
    """(H, 1, 1) float32, as SGD converts its Python scalars."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1)


def _batches(rows: int, setting: TrainConfig, generator: torch.Generator) -> DataLoader:
    """Row indices in the order train_sgd's DataLoader yields its rows: the same sampler, drawing from the same
    generator (the loader draws its base seed from it each epoch too), without collating the features row by row."""
    return DataLoader(
        range(rows),  # type: ignore[arg-type]  # torch accepts any sized indexable; its stub asks for a Dataset
        batch_size=setting.batch_size,
        shuffle=True,
        generator=generator,
        collate_fn=torch.tensor,
    )


def _log_prob_gradients(
    log_probs: torch.Tensor, labels: torch.Tensor, weights: list[torch.Tensor | None]
) -> torch.Tensor:
    """d(mean cross-entropy)/d(log-probabilities) for each distinct class weighting: it depends on the batch's
    labels and the weighting only, not on the head, so it is computed once per weighting (K, B, C)."""
    one = torch.ones((), dtype=log_probs.dtype)
    gradients = []
    for weight in weights:
        _, total = torch.ops.aten.nll_loss_forward(log_probs, labels, weight, _MEAN, _NO_IGNORED)
        gradients.append(torch.ops.aten.nll_loss_backward(one, log_probs, labels, weight, _MEAN, _NO_IGNORED, total))
    return torch.stack(gradients)


def train_stacked(
    features: torch.Tensor, labels: torch.Tensor, num_classes: int, settings: list[TrainConfig]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train one SGD head per setting (all sharing group_key); returns weights (H, C, D) and biases (H, C)."""
    if not settings:
        raise ValueError("no settings to train")
    if len({group_key(setting) for setting in settings}) != 1 or any(s.head != "sgd" for s in settings):
        raise ValueError("stacked heads must be SGD heads sharing seed, batch size and epochs")
    first, heads, dim = settings[0], len(settings), features.shape[1]
    generator = torch.Generator().manual_seed(first.seed)
    # train_sgd's LinearHead draws exactly this from the generator, so every head starts from it.
    init = nn.init.xavier_uniform_(torch.empty(num_classes, dim), generator=generator)
    weight, bias = init.repeat(heads, 1, 1), torch.zeros(heads, 1, num_classes)
    weight_buffer, bias_buffer = torch.zeros_like(weight), torch.zeros_like(bias)
    step, momentum = _per_head([-s.lr for s in settings]), _per_head([s.momentum for s in settings])
    decay = _per_head([s.weight_decay for s in settings])
    kinds = sorted({s.class_weight for s in settings})
    kind_of_head = torch.tensor([kinds.index(s.class_weight) for s in settings])
    kind_weights = [class_weights(labels, num_classes, kind) for kind in kinds]
    with _one_thread(), torch.no_grad():
        for _ in range(first.epochs):
            for index in _batches(len(labels), first, generator):
                x, y = features[index], labels[index]
                rows = x.expand(heads, *x.shape)
                log_probs = torch.log_softmax(torch.baddbmm(bias, rows, weight.transpose(1, 2)), 2)
                grad_log_probs = _log_prob_gradients(log_probs[0], y, kind_weights)[kind_of_head]
                grad_logits = torch._log_softmax_backward_data(grad_log_probs, log_probs, 2, log_probs.dtype)
                grads = (torch.bmm(grad_logits.transpose(1, 2), rows), grad_logits.sum(1, keepdim=True))
                for param, grad, buffer in zip((weight, bias), grads, (weight_buffer, bias_buffer)):
                    grad = grad.addcmul(param, decay)  # SGD: grad.add(param, alpha=weight_decay); exact for 0
                    # SGD: buf = grad at the first step, buf * m + grad after; with momentum 0 it steps with grad
                    # itself, which buf * 0 + grad equals (until a diverging head's buffer is no longer finite).
                    buffer.mul_(momentum).add_(grad)
                    param.addcmul_(buffer, step)  # SGD: param.add(buf, alpha=-lr)
    return weight, bias.squeeze(1)
