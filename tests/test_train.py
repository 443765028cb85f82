"""heads.train: the head trains exactly as the tutorial trains `fc`, reports honest metrics, and is reproducible."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from headstart.heads.config import TrainConfig
from headstart.heads.linear import LinearHead
from headstart.heads.train import evaluate, train_sgd

N_TRAIN, N_VAL, DIM = 100, 40, 512  # 100 rows: batches of 32, 32, 32 and 4, so a plain batch mean differs


def _data(seed: int, rows: int, classes: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(rows, DIM, generator=generator)
    labels = torch.randint(0, classes, (rows,), generator=generator)
    # A weak signal in the first feature, so accuracy is not a constant.
    features[:, 0] += 2.0 * labels.float()
    return features, labels


@pytest.fixture(scope="module")
def train_data() -> tuple[torch.Tensor, torch.Tensor]:
    return _data(1, N_TRAIN)


@pytest.fixture(scope="module")
def val_data() -> tuple[torch.Tensor, torch.Tensor]:
    return _data(2, N_VAL)


def notebook_loop(features, labels, seed: int, val=None, epochs: int = 5, num_classes: int = 2):
    """The tutorial's training of `fc`, written out independently, with a seeded generator; per-epoch metrics."""
    fc = nn.Linear(DIM, num_classes)
    generator = torch.Generator().manual_seed(seed)
    nn.init.xavier_uniform_(fc.weight, generator=generator)
    nn.init.zeros_(fc.bias)
    loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True, generator=generator)
    optimizer = torch.optim.SGD(fc.parameters(), lr=0.001, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    history = []
    for _epoch in range(epochs):
        fc.train()
        loss_sum, correct, seen, batch_means = 0.0, 0, 0, []
        for inputs, targets in loader:
            optimizer.zero_grad()
            outputs = fc(inputs)
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(targets)
            batch_means.append(loss.item())
            correct += int((outputs.argmax(1) == targets).sum())
            seen += len(targets)
        metrics = {
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "batch_mean_loss": sum(batch_means) / len(batch_means),
        }
        if val is not None:
            with torch.no_grad():
                outputs = fc(val[0])
                metrics["val_loss"] = nn.functional.cross_entropy(outputs, val[1]).item()
                metrics["val_acc"] = int((outputs.argmax(1) == val[1]).sum()) / len(val[1])
        history.append(metrics)
    return fc, history


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("with_val", [False, True])
def test_head_equals_notebook_loop_bit_for_bit(train_data, val_data, seed, with_val):
    val = val_data if with_val else None
    result = train_sgd(train_data, val, num_classes=2, config=TrainConfig(seed=seed))
    reference, _ = notebook_loop(*train_data, seed=seed, val=val)
    assert torch.equal(result.head.weight, reference.weight)
    assert torch.equal(result.head.bias, reference.bias)
    # Training moved the head: the comparison is not between two untouched initialisations.
    untouched = LinearHead(DIM, 2, generator=torch.Generator().manual_seed(seed))
    assert not torch.equal(result.head.weight, untouched.weight)
    assert not torch.equal(result.head.bias, torch.zeros(2))


def test_default_config_is_the_notebook_recipe():
    assert TrainConfig() == TrainConfig(epochs=5, lr=0.001, momentum=0.9, batch_size=32, seed=0)


def test_three_classes_match_notebook(train_data):
    features, _ = train_data
    labels = torch.arange(N_TRAIN) % 3
    result = train_sgd((features, labels), None, num_classes=3, config=TrainConfig(seed=3))
    reference, _ = notebook_loop(features, labels, seed=3, num_classes=3)
    assert result.head.weight.shape == (3, DIM)
    assert torch.equal(result.head.weight, reference.weight)
    assert torch.equal(result.head.bias, reference.bias)


def test_same_seed_gives_identical_heads(train_data, val_data):
    first = train_sgd(train_data, val_data, 2, TrainConfig(seed=11))
    second = train_sgd(train_data, val_data, 2, TrainConfig(seed=11))
    assert torch.equal(first.head.weight, second.head.weight)
    assert torch.equal(first.head.bias, second.head.bias)
    assert first.history == second.history


def test_global_rng_state_does_not_change_the_head(train_data):
    torch.manual_seed(1)
    first = train_sgd(train_data, None, 2, TrainConfig(seed=5))
    torch.manual_seed(999)
    torch.rand(17)
    second = train_sgd(train_data, None, 2, TrainConfig(seed=5))
    assert torch.equal(first.head.weight, second.head.weight)
    assert torch.equal(first.head.bias, second.head.bias)


def test_different_seed_gives_different_heads(train_data):
    first = train_sgd(train_data, None, 2, TrainConfig(seed=0))
    second = train_sgd(train_data, None, 2, TrainConfig(seed=1))
    assert not torch.equal(first.head.weight, second.head.weight)
    assert not torch.equal(first.head.bias, second.head.bias)


def test_history_has_one_entry_per_epoch(train_data, val_data):
    seen = []
    result = train_sgd(train_data, val_data, 2, TrainConfig(epochs=3), on_epoch=lambda e, m: seen.append((e, m)))
    assert [entry["epoch"] for entry in result.history] == [1, 2, 3]
    assert [epoch for epoch, _ in seen] == [1, 2, 3]
    assert [metrics for _, metrics in seen] == result.history
    assert result.final == result.history[-1]
    for entry in result.history:
        assert set(entry) == {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}


def test_history_without_val_has_no_val_metrics(train_data):
    result = train_sgd(train_data, None, 2, TrainConfig())
    assert len(result.history) == 5
    for entry in result.history:
        assert set(entry) == {"epoch", "train_loss", "train_acc"}


def test_train_loss_is_sample_weighted_mean_not_divided_by_epoch(train_data):
    result = train_sgd(train_data, None, 2, TrainConfig(seed=4))
    _, reference = notebook_loop(*train_data, seed=4)
    for epoch, (got, expected) in enumerate(zip(result.history, reference), start=1):
        assert got["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-12, abs=0)
        assert got["train_acc"] == expected["train_acc"]
        # The alternatives the metric must not be: the mean of batch means (the last batch has 4 rows)
        # and the notebook's division by the epoch number.
        assert got["train_loss"] != pytest.approx(expected["batch_mean_loss"], rel=1e-9, abs=0)
        if epoch > 1:
            assert got["train_loss"] != pytest.approx(expected["train_loss"] / epoch, rel=1e-3)
    # Loss at chance for two classes is ln 2; the metric must be of that order every epoch, not shrinking as 1/epoch.
    assert all(0.3 < entry["train_loss"] < 3.0 for entry in result.history)


def test_val_metrics_equal_a_direct_computation_each_epoch(train_data, val_data):
    result = train_sgd(train_data, val_data, 2, TrainConfig(seed=2))
    _, reference = notebook_loop(*train_data, seed=2, val=val_data)
    for got, expected in zip(result.history, reference):
        assert got["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
        assert got["val_acc"] == expected["val_acc"]
    # The final entry matches the returned head scored directly.
    with torch.no_grad():
        outputs = result.head(val_data[0])
    assert result.final["val_loss"] == pytest.approx(nn.functional.cross_entropy(outputs, val_data[1]).item(), rel=1e-6)
    assert result.final["val_acc"] == (outputs.argmax(1) == val_data[1]).sum().item() / N_VAL


def test_validation_does_not_change_training(train_data, val_data):
    with_val = train_sgd(train_data, val_data, 2, TrainConfig(seed=9))
    without_val = train_sgd(train_data, None, 2, TrainConfig(seed=9))
    assert torch.equal(with_val.head.weight, without_val.head.weight)
    assert [e["train_loss"] for e in with_val.history] == [e["train_loss"] for e in without_val.history]


class _Spy(nn.Module):
    """A linear layer that records whether gradients were on and its mode during each forward."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(DIM, 2)
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x):
        self.calls.append((torch.is_grad_enabled(), self.training))
        return self.linear(x)


def test_evaluate_runs_without_grad_in_eval_mode(val_data):
    spy = _Spy()
    spy.train()
    scores = evaluate(spy, *val_data)
    assert spy.calls == [(False, False)]
    assert spy.linear.weight.grad is None
    with torch.no_grad():
        outputs = spy.linear(val_data[0])
    assert scores.loss == pytest.approx(nn.functional.cross_entropy(outputs, val_data[1]).item(), rel=1e-6)
    assert scores.acc == (outputs.argmax(1) == val_data[1]).sum().item() / N_VAL
    assert isinstance(scores.loss, float) and isinstance(scores.acc, float)


def test_evaluate_perfect_and_wrong_predictions():
    head = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2) * 50)
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert evaluate(head, features, torch.tensor([0, 1, 0, 1])).acc == 1.0
    assert evaluate(head, features, torch.tensor([0, 1, 0, 1])).loss == pytest.approx(0.0, abs=1e-12)
    wrong = evaluate(head, features, torch.tensor([1, 0, 0, 1]))
    assert wrong.acc == 0.5
    assert wrong.loss == pytest.approx(25.0, rel=1e-6)  # half the rows cost 50 nats


def test_train_acc_counts_outputs_before_each_step(train_data):
    """train_acc is the notebook's running accuracy (outputs of the forward pass that produced the loss)."""
    result = train_sgd(train_data, None, 2, TrainConfig(seed=6, epochs=2))
    _, reference = notebook_loop(*train_data, seed=6, epochs=2)
    assert [e["train_acc"] for e in result.history] == [e["train_acc"] for e in reference]
    assert all(0.0 <= e["train_acc"] <= 1.0 for e in result.history)


@pytest.mark.parametrize("rows", [100, 96, 1])  # a partial last batch, whole batches only, one row
def test_shuffled_batches_are_the_dataloaders_batches_epoch_after_epoch(rows):
    """train_sgd indexes its batches (ShuffledBatches) rather than collating them in a DataLoader: the same rows in
    the same order, epoch after epoch, leaving the generator where the loader leaves it."""
    from headstart.heads.train import ShuffledBatches

    features, labels = _data(3, rows, classes=3)
    ours, theirs = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True, generator=theirs)
    for _ in range(3):
        batches = ShuffledBatches(features, labels, 32, ours)
        mine, reference = list(batches), list(loader)
        assert len(batches) == len(loader) == len(mine) == len(reference)
        for (x, y), (x_ref, y_ref) in zip(mine, reference):
            assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
    assert torch.equal(ours.get_state(), theirs.get_state())


class _Autograd(nn.Module):
    """A LinearHead seen through a module that is not nn.Linear: train_one_epoch takes autograd's path for it."""

    def __init__(self, head: LinearHead):
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


@pytest.mark.parametrize("weighted", [False, True])
def test_linear_step_without_autograd_gives_autograds_bits(train_data, weighted):
    """A linear head's step (heads/train.py's _linear_step, no autograd) gives the parameters, losses and accuracy
    autograd's cross_entropy(...).backward() gives, bit for bit, with class weights and weight decay too."""
    from headstart.heads.sgd import MomentumSGD
    from headstart.heads.train import ShuffledBatches, train_one_epoch

    weight = torch.tensor([0.3, 1.7]) if weighted else None
    results = []
    for wrap in (False, True):
        generator = torch.Generator().manual_seed(0)
        head = LinearHead(DIM, 2, generator=generator)
        optimizer = MomentumSGD(head.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
        model = _Autograd(head) if wrap else head
        scores = [train_one_epoch(model, ShuffledBatches(*train_data, 7, generator), optimizer, weight) for _ in "ab"]
        results.append((head.weight.detach().clone(), head.bias.detach().clone(), scores))
    (weight_fast, bias_fast, scores_fast), (weight_ref, bias_ref, scores_ref) = results
    assert torch.equal(weight_fast, weight_ref) and torch.equal(bias_fast, bias_ref)
    assert scores_fast == scores_ref
