"""Training benchmarks of ``python -m mla.bench MLP``.

Two cases time the same relu network, trained with softmax cross-entropy
and SGD with momentum 0.9, in three implementations that start from the
same weights. The first is ``mla.MLP``. The second is ``NumpyMLP`` below,
which does the same arithmetic with NumPy operators, so its products go to
NumPy's BLAS. The third, when PyTorch is installed, is ``torch.nn`` layers
with autograd and ``torch.optim.SGD``.

- ``step``: one training step (forward, loss, backward, update) on a
  (256, 784) batch through 784-256-128-10, the shape of an MNIST network.
- ``epoch``: one shuffled epoch of batches of 32 over the training split of
  scikit-learn's bundled digits (1347 images of 64 pixels) through
  64-128-10. It needs scikit-learn.

:mod:`mla.bench` times the runners and prints them with the other cases.
"""

import importlib.util
from dataclasses import dataclass

import numpy as np

import mla

__all__ = ["TRAINING_CASES", "NumpyMLP", "Runners", "TrainingCase"]

# Learning rate of every timed step: small, so that the repeated steps of a
# timing loop leave the weights in a normal range.
LEARNING_RATE = 1e-3
MOMENTUM = 0.9


class NumpyMLP:
    """mla.MLP's relu network, loss and SGD update, in plain NumPy operators.

    Parameters
    ----------
    weights, biases : list of ndarray
        Copied, shaped as ``mla.MLP.weights`` and ``mla.MLP.biases``.
    momentum : float
        Momentum of SGD, in PyTorch's form ``v = momentum * v + g``.
    """

    def __init__(self, weights, biases, momentum=MOMENTUM):
        self.weights = [W.copy() for W in weights]
        self.biases = [b.copy() for b in biases]
        self.momentum = momentum
        self.velocity = [np.zeros_like(p) for p in self.weights + self.biases]

    def loss_and_gradients(self, X, y):
        """Return the mean cross-entropy and ``(dW, db)`` per layer."""
        inputs, pre_activations = [], []
        A = X
        last = len(self.weights) - 1
        for index, (W, b) in enumerate(zip(self.weights, self.biases)):
            Z = A @ W.T + b
            inputs.append(A)
            pre_activations.append(Z)
            A = np.maximum(Z, 0) if index < last else Z

        # Softmax cross-entropy and its gradient (softmax - onehot) / batch.
        batch = len(y)
        rows = np.arange(batch)
        shifted = A - A.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(total[:, 0]) - shifted[rows, y]))
        d_out = exp / total
        d_out[rows, y] -= 1
        d_out /= batch

        gradients = [None] * len(self.weights)
        for index in range(last, -1, -1):
            if index < last:
                d_out = d_out * (pre_activations[index] > 0)
            dW = d_out.T @ inputs[index]
            db = d_out.sum(axis=0)
            if index > 0:
                d_out = d_out @ self.weights[index]
            gradients[index] = (dW, db)
        return loss, gradients

    def step(self, gradients, lr):
        """Update the parameters in place: ``v = momentum v + g``, ``p -= lr v``."""
        flat = [pair[0] for pair in gradients] + [pair[1] for pair in gradients]
        for parameter, gradient, velocity in zip(
            self.weights + self.biases, flat, self.velocity
        ):
            velocity *= self.momentum
            velocity += gradient
            parameter -= lr * velocity


def torch_network(torch, model):
    """Return ``(network, optimizer)``: ``model``'s layers and SGD in PyTorch."""
    layers = []
    last = len(model.weights) - 1
    for index, (W, b) in enumerate(zip(model.weights, model.biases)):
        linear = torch.nn.Linear(
            W.shape[1], W.shape[0], dtype=torch.from_numpy(W).dtype
        )
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers.append(linear)
        if index < last:
            layers.append(torch.nn.ReLU())
    network = torch.nn.Sequential(*layers)
    optimizer = torch.optim.SGD(
        network.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM
    )
    return network, optimizer


def _torch_step(torch, network, optimizer, X, y):
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(network(X), y)
    loss.backward()
    optimizer.step()


@dataclass
class Runners:
    """Callables that one training case times, and results that must agree.

    ``mla``, ``reference`` and ``torch`` take no arguments; ``torch`` is
    None without PyTorch. ``result`` and ``expected`` are mla's and NumPy's
    loss and gradients on the same batch and weights, before any timing.
    """

    mla: object
    reference: object
    torch: object
    result: object
    expected: object


@dataclass
class TrainingCase:
    """A training benchmark; ``make_runners(dtype, torch)`` builds its Runners.

    ``make_runners`` returns None when the case cannot run here (no
    scikit-learn for the digits), and ``skip_reason`` gives the reason.
    """

    function: str
    shape: str
    make_runners: object
    skip_reason: str = ""


def _as_tuples(loss, gradients):
    return (np.float64(loss), tuple(tuple(pair) for pair in gradients))


def _runners(model, X, y, torch, epoch_batch=None):
    """Build the Runners of a step (epoch_batch None) or of an epoch."""
    numpy_model = NumpyMLP(model.weights, model.biases)
    result = _as_tuples(*model.loss_and_gradients(X[:256], y[:256]))
    expected = _as_tuples(*numpy_model.loss_and_gradients(X[:256], y[:256]))

    if epoch_batch is None:

        def run_mla():
            _, gradients = model.loss_and_gradients(X, y)
            model.step(gradients, LEARNING_RATE)

        def run_numpy():
            _, gradients = numpy_model.loss_and_gradients(X, y)
            numpy_model.step(gradients, LEARNING_RATE)

    else:
        rng = np.random.default_rng(0)

        def run_mla():
            model.fit(
                X, y, epochs=1, batch_size=epoch_batch, lr=LEARNING_RATE, progress=False
            )

        def run_numpy():
            order = rng.permutation(len(X))
            X_epoch, y_epoch = X[order], y[order]
            for start in range(0, len(X), epoch_batch):
                stop = start + epoch_batch
                _, gradients = numpy_model.loss_and_gradients(
                    X_epoch[start:stop], y_epoch[start:stop]
                )
                numpy_model.step(gradients, LEARNING_RATE)

    run_torch = None
    if torch is not None:
        network, optimizer = torch_network(torch, model)
        X_torch, y_torch = torch.from_numpy(X), torch.from_numpy(y)

        if epoch_batch is None:

            def run_torch():
                _torch_step(torch, network, optimizer, X_torch, y_torch)

        else:
            generator = torch.Generator().manual_seed(0)

            def run_torch():
                order = torch.randperm(len(X_torch), generator=generator)
                X_epoch, y_epoch = X_torch[order], y_torch[order]
                for start in range(0, len(X_torch), epoch_batch):
                    stop = start + epoch_batch
                    _torch_step(
                        torch,
                        network,
                        optimizer,
                        X_epoch[start:stop],
                        y_epoch[start:stop],
                    )

    return Runners(run_mla, run_numpy, run_torch, result, expected)


def _step_runners(dtype, torch):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 784)).astype(dtype)
    y = rng.integers(0, 10, size=256)
    model = mla.MLP([784, 256, 128, 10], seed=0, dtype=dtype)
    return _runners(model, X, y, torch)


def _epoch_runners(dtype, torch):
    if importlib.util.find_spec("sklearn") is None:
        return None
    from mla.train_digits import load_data

    X, _, y, _ = load_data(seed=0, dtype=dtype)
    model = mla.MLP([64, 128, 10], seed=0, dtype=dtype)
    return _runners(model, X, y, torch, epoch_batch=32)


TRAINING_CASES = (
    TrainingCase("MLP", "step (256, 784) 784-256-128-10", _step_runners),
    TrainingCase(
        "MLP",
        "epoch digits 64-128-10",
        _epoch_runners,
        skip_reason="needs scikit-learn for the digits data set",
    ),
)
