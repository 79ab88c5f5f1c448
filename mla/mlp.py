"""A multi-layer perceptron trained on mla's kernels: ``mla.MLP``.

Every layer of the network is ``act(X @ W.T + b)``, computed by
``forward_layer_batch``, and the last layer is linear. Training runs each
mini-batch through a handful of kernel calls: one forward product per layer,
the loss and its gradient (``softmax_cross_entropy`` for class labels, mean
squared error for real targets), and one ``dense_backward`` per layer. No
Python loop runs over samples. The optimizer update (SGD with momentum, or
Adam) is one pass of a C kernel over each parameter.
"""

import math
import numbers
import operator
import sys

import numpy as np

import mla
from mla import _core

__all__ = ["MLP"]

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear", None)
OPTIMIZERS = ("sgd", "adam")

# Learning rate that fit and step use when lr is None, per optimizer.
DEFAULT_LEARNING_RATES = {"sgd": 0.01, "adam": 0.001}


class MLP:
    """Multi-layer perceptron with mla's C kernels underneath.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from the input to the output, for example ``[64, 128, 10]``:
        64 features, one hidden layer of 128 units and 10 outputs. At least
        two entries, each at least 1.
    activation : {'relu', 'sigmoid', 'tanh', 'linear', None}, default 'relu'
        Activation of every hidden layer. The output layer is linear: its
        outputs are logits for classification and predictions for
        regression.
    seed : int or None, default None
        Seed of the generator that draws the initial weights and shuffles
        the samples in ``fit``. The same seed gives the same training run.
    dtype : {numpy.float32, numpy.float64}, default numpy.float32
        Precision of the parameters and of every computation. Inputs of
        other dtypes are converted.
    optimizer : {'sgd', 'adam'}, default 'sgd'
        Update rule of ``step``. ``'sgd'`` keeps a velocity per parameter,
        ``v = momentum * v + g``, then ``p -= lr * v`` (PyTorch's form).
        ``'adam'`` keeps running means of the gradient and of its square,
        ``m`` and ``v``, corrects their bias towards 0 at step t as
        ``m_hat = m / (1 - beta1**t)`` and ``v_hat = v / (1 - beta2**t)``,
        and updates ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.
    momentum : float, default 0.9
        Momentum of SGD, in [0, 1). 0 gives plain SGD.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of Adam's first and second moments, each in [0, 1).
    eps : float, default 1e-8
        Term added to Adam's denominator, finite and greater than 0.

    Attributes
    ----------
    weights : list of ndarray
        ``weights[i]`` has shape ``(layer_sizes[i + 1], layer_sizes[i])``,
        as ``W`` in ``forward_layer_batch``. Initialized from a normal
        distribution with standard deviation ``sqrt(2 / n_in)`` for relu
        hidden layers (He) and ``sqrt(1 / n_in)`` elsewhere (LeCun).
        ``step`` updates the arrays in place: an array put in their place
        must be C-contiguous and writeable, with the model's dtype.
    biases : list of ndarray
        ``biases[i]`` has shape ``(layer_sizes[i + 1],)``, initialized to 0.
    task : {'classification', 'regression'} or None
        Set from the targets of the latest ``loss_and_gradients`` or
        ``fit`` call: integer targets are class labels, float targets are
        regression values. None before any training.
    loss_history : list of float
        Mean training loss of each epoch that ``fit`` has run.

    Raises
    ------
    TypeError
        If layer_sizes has a non-integer entry, activation or optimizer is
        not a str, dtype is not float32 or float64, seed is not an integer,
        momentum or eps is not a real number, or betas is not a pair of
        real numbers.
    ValueError
        If a size, the activation, the optimizer, the seed or an option is
        out of its range.

    Notes
    -----
    Classification minimizes the mean cross-entropy of ``softmax(logits)``
    against integer labels in ``[0, layer_sizes[-1])``. Regression minimizes
    the mean squared error over every output of every sample, as PyTorch's
    ``MSELoss``; 1-D targets need one output unit.

    Examples
    --------
    >>> import numpy as np
    >>> import mla
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((200, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5])
    >>> model = mla.MLP([3, 16, 1], seed=0, dtype=np.float64)
    >>> model = model.fit(X, y, epochs=100, batch_size=20, lr=0.01, progress=False)
    >>> model.task
    'regression'
    >>> bool(np.mean((model.predict(X) - y) ** 2) < 0.05)
    True
    """

    def __init__(
        self,
        layer_sizes,
        activation="relu",
        seed=None,
        dtype=np.float32,
        *,
        optimizer="sgd",
        momentum=0.9,
        betas=(0.9, 0.999),
        eps=1e-8,
    ):
        self.layer_sizes = _check_layer_sizes(layer_sizes)
        if not (activation is None or isinstance(activation, str)):
            raise TypeError(
                f"MLP: activation must be a str or None; got {type(activation).__name__}"
            )
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"MLP: unknown activation {activation!r}; expected 'relu', "
                "'sigmoid', 'tanh', 'linear' or None"
            )
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            self.dtype = None
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"MLP: dtype must be float32 or float64; got {dtype!r}")
        if not isinstance(optimizer, str):
            raise TypeError(f"MLP: optimizer must be a str; got {type(optimizer).__name__}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"MLP: unknown optimizer {optimizer!r}; expected 'sgd' or 'adam'"
            )
        momentum_value = _real(momentum, "MLP: momentum")
        if not 0.0 <= momentum_value < 1.0:
            raise ValueError(f"MLP: momentum must be in [0, 1); got {momentum!r}")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise TypeError(f"MLP: betas must be a pair of real numbers; got {betas!r}") from None
        beta_values = (_real(beta1, "MLP: betas[0]"), _real(beta2, "MLP: betas[1]"))
        if not all(0.0 <= beta < 1.0 for beta in beta_values):
            raise ValueError(f"MLP: betas must each be in [0, 1); got {betas!r}")
        eps_value = _real(eps, "MLP: eps")
        if not 0 < eps_value < math.inf:
            raise ValueError(f"MLP: eps must be finite and greater than 0; got {eps!r}")

        self.activation = activation
        self.optimizer = optimizer
        self.momentum = momentum_value
        self.betas = beta_values
        self.eps = eps_value
        self.task = None
        self.loss_history = []
        try:
            self._rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as error:
            raise type(error)(
                f"MLP: seed must be None or an integer >= 0; got {seed!r}"
            ) from error
        self._target_ndim = 1
        self._init_parameters()
        self.reset_optimizer()

    def __repr__(self):
        return (
            f"MLP({self.layer_sizes}, activation={self.activation!r}, "
            f"dtype={self.dtype.name}, optimizer={self.optimizer!r})"
        )

    def _init_parameters(self):
        self.weights = []
        self.biases = []
        last = len(self.layer_sizes) - 2
        for index, (n_in, n_out) in enumerate(
            zip(self.layer_sizes[:-1], self.layer_sizes[1:])
        ):
            gain = 2.0 if self.activation == "relu" and index < last else 1.0
            scale = math.sqrt(gain / n_in)
            # Drawn in float64, so float32 and float64 models of one seed
            # start from the same values up to rounding.
            W = self._rng.standard_normal((n_out, n_in)) * scale
            self.weights.append(W.astype(self.dtype))
            self.biases.append(np.zeros(n_out, dtype=self.dtype))

    def reset_optimizer(self):
        """Clear the optimizer's state: velocities, moments and step count."""
        parameters = self.weights + self.biases
        self._velocity = [np.zeros_like(p) for p in parameters]
        self._second_moment = (
            [np.zeros_like(p) for p in parameters] if self.optimizer == "adam" else []
        )
        self._steps = 0

    def forward(self, X):
        """Compute the network's output for a batch.

        Parameters
        ----------
        X : array_like, shape (batch, layer_sizes[0])

        Returns
        -------
        ndarray, shape (batch, layer_sizes[-1])
            Logits for classification, predictions for regression.

        Raises
        ------
        TypeError
            If X has a non-real dtype.
        ValueError
            If X is not 2-D or has the wrong number of features.
        """
        return self._forward(self._check_input(X, "forward"))

    def _forward(self, A):
        """Return the network's output for A, already checked by _check_input."""
        last = len(self.weights) - 1
        for index, (W, b) in enumerate(zip(self.weights, self.biases)):
            activation = self.activation if index < last else "linear"
            A = mla.forward_layer_batch(A, W, b, activation)
        return A

    def loss_and_gradients(self, X, y):
        """Compute the loss on a batch and its gradient for every parameter.

        Parameters
        ----------
        X : array_like, shape (batch, layer_sizes[0])
        y : array_like
            Integer class labels of shape ``(batch,)`` for classification, or
            float targets of shape ``(batch, layer_sizes[-1])`` (or
            ``(batch,)`` with one output unit) for regression.

        Returns
        -------
        loss : float
            Mean cross-entropy or mean squared error over the batch.
        gradients : list of (ndarray, ndarray)
            ``(dW, db)`` for each layer, shaped like ``weights[i]`` and
            ``biases[i]``: the input of ``step``.

        Raises
        ------
        ValueError
            If a shape does not fit, X has no samples, or a label is outside
            ``[0, layer_sizes[-1])``.
        TypeError
            If X has a non-real dtype, or y is neither integer nor float.
        """
        X = self._check_input(X, "loss_and_gradients", allow_empty=False)
        task, targets, target_ndim = self._check_targets(
            y, X.shape[0], "loss_and_gradients"
        )
        self.task, self._target_ndim = task, target_ndim
        return self._loss_and_gradients(X, task, targets)

    def _loss_and_gradients(self, X, task, targets):
        """Run loss_and_gradients on checked input: targets as the loss expects."""
        # Forward, keeping each layer's input and pre-activation.
        inputs, pre_activations = [], []
        A = X
        last = len(self.weights) - 1
        for index, (W, b) in enumerate(zip(self.weights, self.biases)):
            Z = mla.forward_layer_batch(A, W, b, "linear")
            inputs.append(A)
            pre_activations.append(Z)
            A = self._activate(Z) if index < last else Z

        if task == "classification":
            loss, d_out = mla.softmax_cross_entropy(A, targets, return_grad=True)
        else:
            difference = A - targets
            loss = np.mean(np.square(difference, dtype=np.float64))
            d_out = difference * self.dtype.type(2.0 / max(difference.size, 1))

        # Backward from the output layer. The first layer's input is the
        # data, so its gradient is skipped.
        gradients = [None] * len(self.weights)
        for index in range(last, -1, -1):
            activation = self.activation if index < last else "linear"
            d_in, dW, db = mla.dense_backward(
                d_out,
                inputs[index],
                self.weights[index],
                pre_activations[index],
                activation,
                input_grad=index > 0,
            )
            gradients[index] = (dW, db)
            d_out = d_in
        return float(loss), gradients

    def step(self, gradients, lr=None):
        """Update the parameters in place with one optimizer step.

        Parameters
        ----------
        gradients : list of (ndarray, ndarray)
            ``(dW, db)`` per layer, as returned by ``loss_and_gradients``.
        lr : float, optional
            Learning rate, finite and greater than 0. None means 0.01 for
            SGD and 0.001 for Adam.

        Raises
        ------
        TypeError
            If gradients is not a list of (dW, db) pairs of real arrays, or
            lr is not a real number.
        ValueError
            If the gradients do not match the parameters' shapes, or lr is
            not finite and greater than 0.
        """
        lr = self._check_learning_rate(lr, "step")
        flat = self._check_gradients(gradients)
        parameters = self.weights + self.biases
        self._steps += 1
        if self.optimizer == "sgd":
            for parameter, gradient, velocity in zip(parameters, flat, self._velocity):
                _core._sgd_update(parameter, velocity, gradient, lr, self.momentum)
            return

        # The bias corrections of m_hat and v_hat are folded into the step
        # size and into eps: lr m_hat / (sqrt(v_hat) + eps) equals
        # step_size m / (sqrt(v) + eps sqrt(1 - beta2^t)).
        beta1, beta2 = self.betas
        correction1 = 1.0 - beta1**self._steps
        correction2 = 1.0 - beta2**self._steps
        step_size = lr * math.sqrt(correction2) / correction1
        # At least the smallest normal number of the dtype: an eps that
        # rounds to 0 there would give 0 / 0 where a gradient was always 0.
        eps = max(self.eps * math.sqrt(correction2), float(np.finfo(self.dtype).tiny))
        for parameter, gradient, first, second in zip(
            parameters, flat, self._velocity, self._second_moment
        ):
            _core._adam_update(
                parameter, first, second, gradient, step_size, beta1, beta2, eps
            )

    def fit(
        self,
        X,
        y,
        epochs=10,
        batch_size=32,
        lr=None,
        *,
        shuffle=True,
        progress=True,
    ):
        """Train on (X, y) with mini-batches, showing a progress bar.

        Each epoch shuffles the samples (unless ``shuffle`` is False), then
        runs ``loss_and_gradients`` and ``step`` on consecutive batches of
        ``batch_size`` samples. The last batch of an epoch may be smaller.

        The progress bar is tqdm's, written to stderr, with the running mean
        loss of the current epoch. When tqdm is not installed, one line per
        epoch is printed to stderr instead.

        Parameters
        ----------
        X : array_like, shape (n_samples, layer_sizes[0])
        y : array_like
            Integer labels or float targets, as in ``loss_and_gradients``.
        epochs : int, default 10
        batch_size : int, default 32
        lr : float, optional
            As in ``step``.
        shuffle : bool, default True
            Shuffle with the model's generator before each epoch.
        progress : bool, default True
            Show the progress bar. False trains silently.

        Returns
        -------
        MLP
            The model itself, trained. ``loss_history`` has one more entry
            per epoch.

        Raises
        ------
        TypeError
            If X has a non-real dtype, y has neither integer labels nor
            float targets, epochs or batch_size is not an integer, shuffle
            or progress is not True or False, or lr is not a real number.
        ValueError
            If a shape does not fit, X has no samples, a label is out of
            range, epochs or batch_size is below 1, or lr is not finite and
            greater than 0.
        """
        X = self._check_input(X, "fit", allow_empty=False)
        task, targets, target_ndim = self._check_targets(y, X.shape[0], "fit")
        epochs = _check_positive_int(epochs, "epochs")
        batch_size = _check_positive_int(batch_size, "batch_size")
        for name, flag in (("shuffle", shuffle), ("progress", progress)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(
                    f"MLP.fit: {name} must be True or False; got {type(flag).__name__}"
                )
        lr = self._check_learning_rate(lr, "fit")
        n_samples = X.shape[0]
        n_batches = -(-n_samples // batch_size)

        bar = _progress_bar(epochs * n_batches, progress)
        try:
            for epoch in range(epochs):
                if shuffle:
                    order = self._rng.permutation(n_samples)
                    X_epoch, y_epoch = X[order], targets[order]
                else:
                    X_epoch, y_epoch = X, targets
                bar.set_description(f"epoch {epoch + 1}/{epochs}")
                total = 0.0
                for batch in range(n_batches):
                    start = batch * batch_size
                    stop = start + batch_size
                    loss, gradients = self._loss_and_gradients(
                        X_epoch[start:stop], task, y_epoch[start:stop]
                    )
                    self.step(gradients, lr)
                    total += loss * (min(stop, n_samples) - start)
                    bar.update(loss=total / min(stop, n_samples))
                self.loss_history.append(total / n_samples)
                bar.end_epoch(epoch, epochs, self.loss_history[-1])
        finally:
            bar.close()
        self.task, self._target_ndim = task, target_ndim
        return self

    def predict(self, X):
        """Predict class labels or regression values for a batch.

        Parameters
        ----------
        X : array_like, shape (batch, layer_sizes[0])

        Returns
        -------
        ndarray
            For classification, the index of the largest logit, shape
            ``(batch,)``, int64. For regression, the outputs, shape
            ``(batch, layer_sizes[-1])``, or ``(batch,)`` when the model was
            trained on 1-D targets.

        Raises
        ------
        RuntimeError
            If the model has not been trained, so the task is unknown.
        """
        if self.task is None:
            raise RuntimeError(
                "MLP.predict: the task is unknown until fit or "
                "loss_and_gradients has seen targets; call fit first"
            )
        outputs = self._forward(self._check_input(X, "predict"))
        if self.task == "classification":
            return np.argmax(outputs, axis=1).astype(np.int64)
        if self._target_ndim == 1:
            return outputs[:, 0]
        return outputs

    def predict_proba(self, X):
        """Return the class probabilities ``softmax(forward(X))``, one row per sample."""
        return mla.softmax(self._forward(self._check_input(X, "predict_proba")), axis=-1)

    def _activate(self, Z):
        if self.activation == "relu":
            return mla.relu(Z)
        if self.activation == "sigmoid":
            return mla.sigmoid(Z)
        if self.activation == "tanh":
            return np.tanh(Z)
        return Z

    def _check_input(self, X, method, allow_empty=True):
        X = _real_array(X, f"MLP.{method}: X").astype(self.dtype, copy=False)
        if X.ndim != 2 or X.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"MLP.{method}: X must have shape (batch, {self.layer_sizes[0]}); "
                f"got {X.shape}"
            )
        if not allow_empty and X.shape[0] == 0:
            raise ValueError(
                f"MLP.{method}: X has no samples, so the loss is undefined; "
                f"got shape {X.shape}"
            )
        return X

    def _check_targets(self, y, batch, method):
        """Return the task, the targets as the loss expects them and y.ndim."""
        y = np.asarray(y)
        n_out = self.layer_sizes[-1]
        if y.dtype.kind in "iu":
            if y.shape != (batch,):
                raise ValueError(
                    f"MLP.{method}: integer labels y must have shape ({batch},) "
                    f"to match X; got {y.shape}"
                )
            if y.size and (y.min() < 0 or y.max() >= n_out):
                bad = y.min() if y.min() < 0 else y.max()
                raise ValueError(
                    f"MLP.{method}: labels must be in [0, {n_out}) for "
                    f"{n_out} output units; got {bad}"
                )
            return "classification", y.astype(np.intp, copy=False), 1
        if y.dtype.kind == "f":
            if y.shape == (batch,) and n_out == 1:
                return "regression", y.astype(self.dtype).reshape(batch, 1), 1
            if y.shape == (batch, n_out):
                return "regression", y.astype(self.dtype, copy=False), 2
            accepted = f"({batch}, {n_out})"
            if n_out == 1:
                accepted += f" or ({batch},)"
            raise ValueError(
                f"MLP.{method}: float targets y must have shape {accepted} "
                f"to match X and the output layer; got {y.shape}"
            )
        raise TypeError(
            f"MLP.{method}: y must contain integer class labels or float "
            f"targets; got dtype {y.dtype}"
        )

    def _check_learning_rate(self, lr, method):
        if lr is None:
            return DEFAULT_LEARNING_RATES[self.optimizer]
        value = _real(lr, f"MLP.{method}: lr")
        if not 0 < value < math.inf:
            raise ValueError(
                f"MLP.{method}: lr must be finite and greater than 0; got {lr!r}"
            )
        return value

    def _check_gradients(self, gradients):
        """Return the gradients flattened as weights then biases, checked."""
        try:
            pairs = [tuple(pair) for pair in gradients]
        except TypeError:
            pairs = None
        if pairs is None or any(len(pair) != 2 for pair in pairs):
            raise TypeError(
                f"MLP.step: gradients must be a list of (dW, db) pairs; got {gradients!r}"
            )
        if len(pairs) != len(self.weights):
            raise ValueError(
                f"MLP.step: expected one (dW, db) pair per layer "
                f"({len(self.weights)}); got {len(pairs)}"
            )
        weight_grads = [_real_array(pair[0], "MLP.step: dW") for pair in pairs]
        bias_grads = [_real_array(pair[1], "MLP.step: db") for pair in pairs]
        for index, (dW, db) in enumerate(zip(weight_grads, bias_grads)):
            W, b = self.weights[index], self.biases[index]
            if dW.shape != W.shape or db.shape != b.shape:
                raise ValueError(
                    f"MLP.step: gradients of layer {index} must have shapes "
                    f"{W.shape} and {b.shape}; got {dW.shape} and {db.shape}"
                )
        return weight_grads + bias_grads


def _check_layer_sizes(layer_sizes):
    try:
        sizes = [operator.index(size) for size in layer_sizes]
    except TypeError:
        sizes = None
    if sizes is None or any(isinstance(size, bool) for size in layer_sizes):
        raise TypeError(
            f"MLP: layer_sizes must be a sequence of integers; got {layer_sizes!r}"
        )
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(
            "MLP: layer_sizes needs at least two sizes (inputs and outputs), "
            f"each at least 1; got {layer_sizes!r}"
        )
    return sizes


def _real(value, label):
    """Return value as a float, or raise TypeError naming ``label``.

    A complex value raises rather than losing its imaginary part, which
    float() of a NumPy complex does with only a warning.
    """
    if type(value) is np.ndarray and value.ndim == 0 and value.dtype.kind in "biuf":
        return float(value)
    # np.bool_ is not a numbers.Real, but np.timedelta64 is one (through np.integer).
    real = isinstance(value, (numbers.Real, np.bool_))
    if not real or isinstance(value, np.timedelta64):
        raise TypeError(f"{label} must be a real number; got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        # An int beyond the double range, which the range checks reject.
        return -math.inf if value < 0 else math.inf


def _real_array(value, label):
    """Return value as an array, or raise TypeError unless its dtype is real."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{label} must have a real dtype; got dtype {array.dtype}")
    return array


def _check_positive_int(value, name):
    """Return value as a Python int, checked to be an integer of at least 1.

    A Python int, so that the batch arithmetic of fit cannot wrap around in
    a small NumPy integer type.
    """
    if isinstance(value, (bool, np.bool_, np.timedelta64)):
        number = None
    else:
        try:
            number = operator.index(value)
        except TypeError:
            number = None
    if number is None:
        raise TypeError(
            f"MLP.fit: {name} must be a positive integer; got {type(value).__name__}"
        )
    if number < 1:
        raise ValueError(f"MLP.fit: {name} must be a positive integer; got {number}")
    return number


class _PlainProgress:
    """Stand-in for tqdm: one line per epoch on stderr, or nothing."""

    def __init__(self, enabled):
        self.enabled = enabled

    def set_description(self, text):
        pass

    def update(self, loss):
        pass

    def end_epoch(self, epoch, epochs, loss):
        if self.enabled:
            print(f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}", file=sys.stderr)

    def close(self):
        pass


class _TqdmProgress:
    """A tqdm bar over every batch of every epoch, with the running loss."""

    def __init__(self, tqdm, total):
        self.bar = tqdm(total=total, unit="batch", leave=True)

    def set_description(self, text):
        self.bar.set_description(text, refresh=False)

    def update(self, loss):
        # refresh=False: tqdm redraws at most every 0.1 s, in update().
        self.bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
        self.bar.update(1)

    def end_epoch(self, epoch, epochs, loss):
        pass

    def close(self):
        self.bar.close()


def _progress_bar(total, enabled):
    """Return a tqdm bar when enabled and installed, else the plain stand-in."""
    if not enabled:
        return _PlainProgress(enabled=False)
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(enabled=True)
    return _TqdmProgress(tqdm, total)
