"""Tests for mla.MLP: gradients, optimizers, training, prediction, arguments.

The gradients of ``loss_and_gradients`` are checked against central finite
differences of the loss in float64, and against PyTorch autograd on the same
weights when torch is installed.
"""

import doctest
import sys
import re

import numpy as np
import pytest
from conftest import FLOAT_DTYPES, dtype_id

import mla
import mla.mlp

ACTIVATIONS = ("relu", "sigmoid", "tanh", "linear")
LAYER_SIZES = [5, 7, 6, 4]
BATCH = 9


def activation_id(activation):
    return str(activation)


def classification_data(rng, batch=BATCH, sizes=LAYER_SIZES):
    X = rng.standard_normal((batch, sizes[0]))
    y = rng.integers(0, sizes[-1], size=batch)
    return X, y


def regression_data(rng, batch=BATCH, sizes=LAYER_SIZES):
    X = rng.standard_normal((batch, sizes[0]))
    y = rng.standard_normal((batch, sizes[-1]))
    return X, y


def randomize_biases(model, rng):
    """Give every bias nonzero values, so that their gradients are exercised."""
    for b in model.biases:
        b[...] = 0.1 * rng.standard_normal(b.shape)


def central_difference_gradients(model, X, y, step=1e-6):
    """Return ``(dW, db)`` per layer of the model's loss by central differences."""
    gradients = []
    for W, b in zip(model.weights, model.biases):
        pair = []
        for parameter in (W, b):
            numeric = np.zeros_like(parameter)
            for index in np.ndindex(parameter.shape):
                saved = parameter[index]
                parameter[index] = saved + step
                upper = model.loss_and_gradients(X, y)[0]
                parameter[index] = saved - step
                lower = model.loss_and_gradients(X, y)[0]
                parameter[index] = saved
                numeric[index] = (upper - lower) / (2 * step)
            pair.append(numeric)
        gradients.append(tuple(pair))
    return gradients


def assert_gradients_match(actual, expected, rtol, atol, label):
    assert len(actual) == len(expected)
    for layer, (pair, expected_pair) in enumerate(zip(actual, expected)):
        for name, gradient, expected_gradient in zip(("dW", "db"), pair, expected_pair):
            np.testing.assert_allclose(
                gradient,
                expected_gradient,
                rtol=rtol,
                atol=atol,
                err_msg=f"{label}, layer {layer} {name}",
            )


@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_mlp_gradients_finite_differences(activation, task, rng):
    model = mla.MLP(LAYER_SIZES, activation, seed=1, dtype=np.float64)
    randomize_biases(model, rng)
    if task == "classification":
        X, y = classification_data(rng)
    else:
        X, y = regression_data(rng)

    loss, gradients = model.loss_and_gradients(X, y)

    assert np.isfinite(loss)
    numeric = central_difference_gradients(model, X, y)
    assert_gradients_match(
        gradients, numeric, rtol=1e-5, atol=1e-8, label=f"{activation} {task}"
    )


def test_mlp_gradients_one_output_regression(rng):
    model = mla.MLP([3, 8, 1], "tanh", seed=2, dtype=np.float64)
    randomize_biases(model, rng)
    X = rng.standard_normal((11, 3))
    y = rng.standard_normal(11)

    loss, gradients = model.loss_and_gradients(X, y)

    expected_loss = np.mean((model.forward(X)[:, 0] - y) ** 2)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    numeric = central_difference_gradients(model, X, y)
    assert_gradients_match(gradients, numeric, rtol=1e-5, atol=1e-8, label="1-D y")


def torch_loss_and_gradients(torch, model, X, y, task):
    """Return the loss and ``(dW, db)`` per layer from PyTorch autograd."""
    functional = torch.nn.functional
    parameters = []
    A = torch.tensor(np.asarray(X, dtype=model.dtype))
    last = len(model.weights) - 1
    for index, (W, b) in enumerate(zip(model.weights, model.biases)):
        W_t = torch.tensor(W, requires_grad=True)
        b_t = torch.tensor(b, requires_grad=True)
        parameters.append((W_t, b_t))
        A = functional.linear(A, W_t, b_t)
        if index < last and model.activation != "linear":
            A = getattr(torch, model.activation)(A)
    if task == "classification":
        loss = functional.cross_entropy(A, torch.tensor(y))
    else:
        loss = functional.mse_loss(A, torch.tensor(np.asarray(y, dtype=model.dtype)))
    loss.backward()
    gradients = [(W.grad.numpy(), b.grad.numpy()) for W, b in parameters]
    return loss.item(), gradients


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
@pytest.mark.parametrize("task", ["classification", "regression"])
@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_mlp_gradients_match_torch_autograd(activation, task, dtype, rng):
    torch = pytest.importorskip("torch")
    sizes = [20, 33, 17, 6]
    model = mla.MLP(sizes, activation, seed=3, dtype=dtype)
    randomize_biases(model, rng)
    if task == "classification":
        X, y = classification_data(rng, batch=40, sizes=sizes)
    else:
        X, y = regression_data(rng, batch=40, sizes=sizes)

    loss, gradients = model.loss_and_gradients(X, y)

    expected_loss, expected = torch_loss_and_gradients(torch, model, X, y, task)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    assert loss == pytest.approx(expected_loss, rel=rtol)
    for pair in gradients:
        assert pair[0].dtype == dtype
        assert pair[1].dtype == dtype
    assert_gradients_match(
        gradients, expected, rtol=rtol, atol=rtol * 1e-2, label=f"{activation} {task}"
    )


def test_mlp_sgd_momentum_update(rng):
    model = mla.MLP([3, 4, 2], seed=0, dtype=np.float64, momentum=0.5)
    start = [p.copy() for p in model.weights + model.biases]
    first = [
        (rng.standard_normal(W.shape), rng.standard_normal(b.shape))
        for W, b in zip(model.weights, model.biases)
    ]
    second = [
        (rng.standard_normal(W.shape), rng.standard_normal(b.shape))
        for W, b in zip(model.weights, model.biases)
    ]

    model.step(first, lr=0.1)
    model.step(second, lr=0.1)

    # v1 = g1, v2 = 0.5 v1 + g2; p = p0 - 0.1 (v1 + v2).
    flat_first = [g for pair in first for g in pair]
    flat_second = [g for pair in second for g in pair]
    order = [0, 2, 1, 3]  # weights of both layers, then biases
    parameters = model.weights + model.biases
    for position, index in enumerate(order):
        g1, g2 = flat_first[index], flat_second[index]
        expected = start[position] - 0.1 * (g1 + (0.5 * g1 + g2))
        np.testing.assert_allclose(parameters[position], expected, rtol=1e-14)


def test_mlp_plain_sgd_without_momentum(rng):
    model = mla.MLP([3, 2], seed=0, dtype=np.float64, momentum=0.0)
    W0, b0 = model.weights[0].copy(), model.biases[0].copy()
    dW, db = rng.standard_normal(W0.shape), rng.standard_normal(b0.shape)

    model.step([(dW, db)], lr=0.5)
    model.step([(dW, db)], lr=0.5)

    np.testing.assert_allclose(model.weights[0], W0 - 1.0 * dW, rtol=1e-14)
    np.testing.assert_allclose(model.biases[0], b0 - 1.0 * db, rtol=1e-14)


def test_mlp_adam_update_formula(rng):
    model = mla.MLP([3, 2], seed=0, dtype=np.float64, optimizer="adam")
    W = model.weights[0].copy()
    gradients = [rng.standard_normal(W.shape) for _ in range(3)]
    m = np.zeros_like(W)
    v = np.zeros_like(W)

    for t, g in enumerate(gradients, start=1):
        model.step([(g, np.zeros(2))], lr=0.01)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g**2
        m_hat = m / (1 - 0.9**t)
        v_hat = v / (1 - 0.999**t)
        W = W - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-8)

    np.testing.assert_allclose(model.weights[0], W, rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_mlp_optimizer_matches_torch(optimizer, rng):
    torch = pytest.importorskip("torch")
    sizes = [6, 10, 3]
    model = mla.MLP(sizes, "tanh", seed=4, dtype=np.float64, optimizer=optimizer)
    X, y = regression_data(rng, batch=16, sizes=sizes)
    tensors = [
        torch.tensor(p.copy(), requires_grad=True) for p in model.weights + model.biases
    ]
    if optimizer == "sgd":
        torch_optimizer = torch.optim.SGD(tensors, lr=0.05, momentum=0.9)
    else:
        torch_optimizer = torch.optim.Adam(tensors, lr=0.05)

    for _ in range(4):
        _, gradients = model.loss_and_gradients(X, y)
        model.step(gradients, lr=0.05)
        torch_optimizer.zero_grad()
        flat = [g for pair in gradients for g in pair]
        ordered = flat[0::2] + flat[1::2]
        for tensor, gradient in zip(tensors, ordered):
            tensor.grad = torch.tensor(gradient)
        torch_optimizer.step()

    for parameter, tensor in zip(model.weights + model.biases, tensors):
        np.testing.assert_allclose(parameter, tensor.detach().numpy(), rtol=1e-10)


def separable_classes(rng, n_samples=300):
    """Return three Gaussian blobs in 4-D with integer labels."""
    centers = 3.0 * rng.standard_normal((3, 4))
    y = rng.integers(0, 3, size=n_samples)
    X = centers[y] + rng.standard_normal((n_samples, 4))
    return X, y


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_mlp_fit_learns_classes(dtype, optimizer, rng):
    X, y = separable_classes(rng)
    model = mla.MLP([4, 16, 3], seed=0, dtype=dtype, optimizer=optimizer)

    model.fit(
        X,
        y,
        epochs=15,
        batch_size=32,
        lr=0.05 if optimizer == "sgd" else 0.01,
        progress=False,
    )

    assert len(model.loss_history) == 15
    assert model.loss_history[-1] < 0.5 * model.loss_history[0]
    assert np.mean(model.predict(X) == y) > 0.9
    for parameter in model.weights + model.biases:
        assert parameter.dtype == dtype


def test_mlp_fit_same_seed_same_model(rng):
    X, y = separable_classes(rng)
    first = mla.MLP([4, 8, 3], seed=7).fit(X, y, epochs=3, progress=False)
    second = mla.MLP([4, 8, 3], seed=7).fit(X, y, epochs=3, progress=False)
    third = mla.MLP([4, 8, 3], seed=8).fit(X, y, epochs=3, progress=False)

    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.weights[0], third.weights[0])
    assert first.loss_history == second.loss_history


def test_mlp_fit_regression_one_output(rng):
    X = rng.standard_normal((200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3

    model = mla.MLP([3, 16, 1], seed=0, dtype=np.float64)
    model.fit(X, y, epochs=60, batch_size=20, lr=0.01, progress=False)

    prediction = model.predict(X)
    assert model.task == "regression"
    assert prediction.shape == (200,)
    assert np.mean((prediction - y) ** 2) < 0.05


def test_mlp_fit_without_shuffle_uses_batches_in_order(rng):
    X, y = separable_classes(rng, n_samples=10)
    model = mla.MLP([4, 5, 3], seed=0, dtype=np.float64)
    manual = mla.MLP([4, 5, 3], seed=0, dtype=np.float64)

    model.fit(X, y, epochs=1, batch_size=4, lr=0.1, shuffle=False, progress=False)
    losses = []
    for start in (0, 4, 8):
        loss, gradients = manual.loss_and_gradients(
            X[start : start + 4], y[start : start + 4]
        )
        manual.step(gradients, lr=0.1)
        losses.append(loss * len(X[start : start + 4]))

    for a, b in zip(model.weights + model.biases, manual.weights + manual.biases):
        np.testing.assert_array_equal(a, b)
    assert model.loss_history[0] == pytest.approx(sum(losses) / 10, rel=1e-12)


def test_mlp_fit_progress_bar_shows_loss(rng, capsys):
    pytest.importorskip("tqdm")
    X, y = separable_classes(rng, n_samples=64)

    mla.MLP([4, 8, 3], seed=0).fit(X, y, epochs=2, batch_size=16)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "epoch 2/2" in captured.err
    assert "loss=" in captured.err
    assert "8/8" in captured.err


def test_mlp_fit_progress_off_is_silent(rng, capsys):
    X, y = separable_classes(rng, n_samples=64)

    mla.MLP([4, 8, 3], seed=0).fit(X, y, epochs=2, batch_size=16, progress=False)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_mlp_fit_without_tqdm_prints_epochs(rng, capsys, monkeypatch):
    # A None entry in sys.modules makes "import tqdm" raise ImportError.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    X, y = separable_classes(rng, n_samples=64)

    model = mla.MLP([4, 8, 3], seed=0).fit(X, y, epochs=2, batch_size=16)

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0] == f"epoch 1/2: loss {model.loss_history[0]:.4f}"
    assert lines[1] == f"epoch 2/2: loss {model.loss_history[1]:.4f}"


def test_mlp_predict_classes_and_probabilities(rng):
    X, y = separable_classes(rng, n_samples=50)
    model = mla.MLP([4, 8, 3], seed=0).fit(X, y, epochs=2, progress=False)

    labels = model.predict(X)
    probabilities = model.predict_proba(X)

    assert labels.shape == (50,)
    assert labels.dtype == np.int64
    assert probabilities.shape == (50, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, np.argmax(model.forward(X), axis=1))


def test_mlp_predict_regression_two_outputs(rng):
    X, y = regression_data(rng, batch=20, sizes=[5, 4, 2])
    model = mla.MLP([5, 4, 2], seed=0).fit(X, y, epochs=1, progress=False)

    prediction = model.predict(X)

    assert prediction.shape == (20, 2)
    np.testing.assert_array_equal(prediction, model.forward(X))


def test_mlp_predict_before_training_raises(rng):
    model = mla.MLP([4, 3], seed=0)

    with pytest.raises(RuntimeError, match=r"^MLP.predict: the task is unknown"):
        model.predict(np.ones((2, 4)))


@pytest.mark.parametrize("activation", ACTIVATIONS, ids=activation_id)
def test_mlp_forward_matches_layer_by_layer(activation, rng):
    model = mla.MLP(LAYER_SIZES, activation, seed=0, dtype=np.float64)
    randomize_biases(model, rng)
    X = rng.standard_normal((BATCH, LAYER_SIZES[0]))

    output = model.forward(X)

    A = X
    for index, (W, b) in enumerate(zip(model.weights, model.biases)):
        A = mla.reference.forward_layer_batch(
            A, W, b, activation if index < 2 else "linear"
        )
    np.testing.assert_allclose(output, A, rtol=1e-12)


def test_mlp_initial_weights(rng):
    model = mla.MLP([400, 300, 10], seed=0, dtype=np.float64)
    tanh_model = mla.MLP([400, 300, 10], "tanh", seed=0, dtype=np.float64)

    assert [W.shape for W in model.weights] == [(300, 400), (10, 300)]
    assert [b.shape for b in model.biases] == [(300,), (10,)]
    # He for relu hidden layers, LeCun for the rest and for the output layer.
    assert np.std(model.weights[0]) == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.std(tanh_model.weights[0]) == pytest.approx(np.sqrt(1 / 400), rel=0.02)
    assert np.std(model.weights[1]) == pytest.approx(np.sqrt(1 / 300), rel=0.05)
    assert all(np.all(b == 0) for b in model.biases)


def test_mlp_float32_and_float64_same_start():
    single = mla.MLP([6, 5, 2], seed=3, dtype=np.float32)
    double = mla.MLP([6, 5, 2], seed=3, dtype=np.float64)

    for W32, W64 in zip(single.weights, double.weights):
        assert W32.dtype == np.float32
        np.testing.assert_array_equal(W32, W64.astype(np.float32))


def test_mlp_float32_converts_float64_input(rng):
    model = mla.MLP([4, 3], seed=0, dtype=np.float32)
    X = rng.standard_normal((5, 4))

    assert model.forward(X).dtype == np.float32
    loss, gradients = model.loss_and_gradients(X, np.array([0, 1, 2, 0, 1]))
    assert isinstance(loss, float)
    assert gradients[0][0].dtype == np.float32


def test_mlp_repr():
    model = mla.MLP([4, 8, 3], "tanh", optimizer="adam")

    assert repr(model) == (
        "MLP([4, 8, 3], activation='tanh', dtype=float32, optimizer='adam')"
    )


def test_mlp_docstring_examples():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = finder.find(mla.mlp.MLP, "MLP", globs={})

    for test in tests:
        runner.run(test)

    assert sum(len(test.examples) for test in tests) > 0
    assert runner.failures == 0


@pytest.mark.parametrize(
    "arguments, error, pattern",
    [
        (([4],), ValueError, r"^MLP: layer_sizes needs at least two sizes"),
        (([4, 0, 3],), ValueError, r"^MLP: layer_sizes needs .* each at least 1"),
        (([4, 2.5],), TypeError, r"^MLP: layer_sizes must be a sequence of integers"),
        (([4, True],), TypeError, r"^MLP: layer_sizes must be a sequence of integers"),
        ((5,), TypeError, r"^MLP: layer_sizes must be a sequence of integers"),
        (([4, 3], "softplus"), ValueError, r"^MLP: unknown activation 'softplus'"),
        (([4, 3], "relu", 0, np.int32), TypeError, r"^MLP: dtype must be float32"),
        (([4, 3], "relu", 0, np.float16), TypeError, r"^MLP: dtype must be float32"),
        (([4, 3], "relu", 0, "foo"), TypeError, r"^MLP: dtype must be float32.*'foo'"),
        (([4, 3], "relu", 0, 1.5), TypeError, r"^MLP: dtype must be float32.*1\.5"),
        (([4, 3], np.array("relu")), TypeError, r"^MLP: activation must be a str or None"),
        (([4, 3], "relu", 1.5), TypeError, r"^MLP: seed must be None or an integer >= 0"),
        (([4, 3], "relu", -1), ValueError, r"^MLP: seed must be None or an integer >= 0"),
    ],
    ids=[
        "one-size",
        "zero-width",
        "float-size",
        "bool-size",
        "not-sequence",
        "activation",
        "int-dtype",
        "float16-dtype",
        "unknown-dtype",
        "float-dtype",
        "array-activation",
        "float-seed",
        "negative-seed",
    ],
)
def test_mlp_invalid_construction(arguments, error, pattern):
    with pytest.raises(error, match=pattern):
        mla.MLP(*arguments)


@pytest.mark.parametrize(
    "options, pattern",
    [
        ({"optimizer": "rmsprop"}, r"^MLP: unknown optimizer 'rmsprop'"),
        ({"momentum": 1.0}, r"^MLP: momentum must be in \[0, 1\); got 1.0"),
        ({"momentum": -0.1}, r"^MLP: momentum must be in \[0, 1\)"),
        ({"betas": (0.9, 1.0)}, r"^MLP: betas must each be in \[0, 1\)"),
        ({"eps": 0.0}, r"^MLP: eps must be finite and greater than 0; got 0.0"),
        ({"eps": np.inf}, r"^MLP: eps must be finite and greater than 0; got inf"),
    ],
    ids=["optimizer", "momentum-one", "momentum-negative", "beta", "eps", "eps-inf"],
)
def test_mlp_invalid_optimizer_options(options, pattern):
    with pytest.raises(ValueError, match=pattern):
        mla.MLP([4, 3], **options)


@pytest.mark.parametrize("optimizer", [np.array("adam"), None, 1], ids=repr)
def test_mlp_optimizer_not_str(optimizer):
    with pytest.raises(TypeError, match=r"^MLP: optimizer must be a str; got"):
        mla.MLP([4, 3], optimizer=optimizer)


@pytest.mark.parametrize(
    "method", ["forward", "predict", "predict_proba", "loss_and_gradients", "fit"]
)
def test_mlp_wrong_feature_count(method, rng):
    model = mla.MLP([4, 3], seed=0)
    # predict needs a trained model to know the task.
    model.fit(rng.standard_normal((8, 4)), np.arange(8) % 3, epochs=1, progress=False)
    X = np.ones((5, 6))
    y = np.zeros(5, dtype=int)
    args = (X,) if method in ("forward", "predict", "predict_proba") else (X, y)

    with pytest.raises(ValueError, match=rf"^MLP.{method}: X must have shape") as error:
        getattr(model, method)(*args)

    assert "(batch, 4)" in str(error.value)
    assert "(5, 6)" in str(error.value)


@pytest.mark.parametrize("method", ["loss_and_gradients", "fit"])
def test_mlp_empty_batch_raises(method):
    model = mla.MLP([4, 3], seed=0)

    with pytest.raises(ValueError, match=rf"^MLP.{method}: X has no samples"):
        getattr(model, method)(np.ones((0, 4)), np.zeros(0, dtype=int))


def test_mlp_forward_empty_batch():
    model = mla.MLP([4, 3], seed=0)

    assert model.forward(np.ones((0, 4))).shape == (0, 3)


@pytest.mark.parametrize(
    "y, error, pattern",
    [
        (np.array([0, 1, 3, 0, 1]), ValueError, r"labels must be in \[0, 3\) .* got 3"),
        (
            np.array([0, -1, 2, 0, 1]),
            ValueError,
            r"labels must be in \[0, 3\) .* got -1",
        ),
        (
            np.zeros((5, 1), dtype=int),
            ValueError,
            r"integer labels y must have shape \(5,\)",
        ),
        (
            np.zeros(4, dtype=int),
            ValueError,
            r"integer labels y must have shape \(5,\)",
        ),
        (
            np.zeros(5),
            ValueError,
            r"float targets y must have shape \(5, 3\) .*got \(5,\)",
        ),
        (np.zeros((5, 2)), ValueError, r"float targets y must have shape \(5, 3\)"),
        (np.array(["a"] * 5), TypeError, r"y must contain integer class labels"),
        (np.zeros(5, dtype=complex), TypeError, r"got dtype complex128"),
    ],
    ids=[
        "label-too-large",
        "label-negative",
        "labels-2d",
        "labels-short",
        "float-1d",
        "float-wrong-width",
        "strings",
        "complex",
    ],
)
@pytest.mark.parametrize("method", ["loss_and_gradients", "fit"])
def test_mlp_invalid_targets(method, y, error, pattern):
    model = mla.MLP([4, 3], seed=0)

    with pytest.raises(error, match=rf"^MLP.{method}: .*{pattern}"):
        getattr(model, method)(np.ones((5, 4)), y)


@pytest.mark.parametrize(
    "options, error, pattern",
    [
        ({"epochs": 0}, ValueError, r"epochs must be a positive integer; got 0"),
        ({"epochs": 2.0}, TypeError, r"epochs must be a positive integer; got float"),
        ({"epochs": np.timedelta64(1)}, TypeError, r"epochs must be a positive integer"),
        ({"batch_size": 0}, ValueError, r"batch_size must be a positive integer; got 0"),
        ({"batch_size": "32"}, TypeError, r"batch_size must be a positive integer; got str"),
        ({"lr": 0.0}, ValueError, r"lr must be finite and greater than 0; got 0.0"),
        ({"lr": -1}, ValueError, r"lr must be finite and greater than 0; got -1"),
        ({"lr": np.inf}, ValueError, r"lr must be finite and greater than 0; got inf"),
        ({"shuffle": "no"}, TypeError, r"shuffle must be True or False; got str"),
        ({"progress": None}, TypeError, r"progress must be True or False; got NoneType"),
    ],
    ids=[
        "epochs-zero",
        "epochs-float",
        "epochs-timedelta",
        "batch-zero",
        "batch-str",
        "lr-zero",
        "lr-negative",
        "lr-inf",
        "shuffle-str",
        "progress-none",
    ],
)
def test_mlp_fit_invalid_options(options, error, pattern):
    model = mla.MLP([4, 3], seed=0)
    options = {"progress": False, **options}

    with pytest.raises(error, match=rf"^MLP.fit: {pattern}"):
        model.fit(np.ones((5, 4)), np.zeros(5, dtype=int), **options)


@pytest.mark.parametrize("batch_type", [np.uint8, np.int8, np.uint64], ids=dtype_id)
def test_mlp_fit_numpy_integer_sizes(batch_type, rng):
    # NumPy 2 keeps the batch arithmetic in the small type, where it would
    # wrap around (uint8: -(-300 // 100) is out of range).
    X = rng.standard_normal((300, 4))
    y = rng.integers(0, 3, 300)
    expected = mla.MLP([4, 3], seed=0).fit(X, y, epochs=2, batch_size=100, progress=False)

    model = mla.MLP([4, 3], seed=0).fit(
        X, y, epochs=batch_type(2), batch_size=batch_type(100), progress=False
    )

    assert model.loss_history == expected.loss_history
    assert {type(loss) for loss in model.loss_history} == {float}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=dtype_id)
def test_mlp_adam_tiny_eps_stays_finite(dtype, rng):
    # eps * sqrt(1 - beta2**t) underflows to 0 in the dtype. A weight whose
    # gradient is always 0 (input column 0 is 0) would then get 0 / 0.
    X = rng.standard_normal((40, 3))
    X[:, 0] = 0
    model = mla.MLP([3, 4, 2], seed=0, dtype=dtype, optimizer="adam", eps=1e-300)
    before = model.weights[0][:, 0].copy()

    model.fit(X, rng.integers(0, 2, 40), epochs=2, batch_size=10, progress=False)

    assert all(np.isfinite(W).all() for W in model.weights)
    np.testing.assert_array_equal(model.weights[0][:, 0], before)


@pytest.mark.parametrize("method", ["forward", "loss_and_gradients", "fit"])
def test_mlp_complex_input_rejected(method):
    model = mla.MLP([4, 3], seed=0)
    X = np.ones((5, 4)) + 1j
    arguments = (X,) if method == "forward" else (X, np.zeros(5, dtype=int))
    options = {"progress": False} if method == "fit" else {}

    with pytest.raises(TypeError, match=rf"^MLP.{method}: X must have a real dtype"):
        getattr(model, method)(*arguments, **options)


@pytest.mark.parametrize("gradients", [None, 5, [(1, 2, 3)], [3]], ids=repr)
def test_mlp_step_gradients_not_pairs(gradients):
    model = mla.MLP([4, 3], seed=0)

    with pytest.raises(TypeError, match=r"^MLP.step: gradients must be a list of \(dW, db\) pairs"):
        model.step(gradients, lr=0.1)


def test_mlp_step_complex_gradient_rejected():
    model = mla.MLP([4, 3], seed=0)
    dW, db = np.zeros((3, 4), dtype=complex), np.zeros(3)

    with pytest.raises(TypeError, match=r"^MLP.step: dW must have a real dtype"):
        model.step([(dW, db)], lr=0.1)


@pytest.mark.parametrize(
    "value",
    ["0.1", 1j, np.complex64(0.5), np.array([0.1]), np.timedelta64(0), np.array("0.1")],
    ids=repr,
)
@pytest.mark.parametrize("name", ["momentum", "betas", "eps"])
def test_mlp_option_not_real(name, value):
    # float() of a NumPy complex would drop the imaginary part with a warning.
    label = "betas[1]" if name == "betas" else name
    option = (0.9, value) if name == "betas" else value

    with pytest.raises(TypeError, match=rf"^MLP: {re.escape(label)} must be a real number; got"):
        mla.MLP([4, 3], **{name: option})


@pytest.mark.parametrize("value", ["0.1", 1j, np.complex64(0.5), np.array([0.1])], ids=repr)
@pytest.mark.parametrize("method", ["fit", "step"])
def test_mlp_learning_rate_not_real(method, value):
    model = mla.MLP([4, 3], seed=0)
    X, y = np.ones((5, 4)), np.zeros(5, dtype=int)

    with pytest.raises(TypeError, match=rf"^MLP.{method}: lr must be a real number; got"):
        if method == "fit":
            model.fit(X, y, lr=value, progress=False)
        else:
            model.step(model.loss_and_gradients(X, y)[1], lr=value)


@pytest.mark.parametrize("betas", [0.9, (0.9,), (0.9, 0.99, 0.999), None], ids=repr)
def test_mlp_betas_not_pair(betas):
    with pytest.raises(TypeError, match=r"^MLP: betas must be a pair of real numbers"):
        mla.MLP([4, 3], betas=betas)


def test_mlp_options_accept_numpy_scalars():
    model = mla.MLP(
        [4, 3], momentum=np.float32(0.5), betas=(np.array(0.8), np.False_), eps=np.float16(1e-3)
    )

    assert model.momentum == 0.5
    assert model.betas == (0.8, 0.0)
    assert model.eps == float(np.float16(1e-3))
    assert {type(model.momentum), type(model.eps)} | set(map(type, model.betas)) == {float}


def test_mlp_step_wrong_gradients(rng):
    model = mla.MLP([4, 5, 3], seed=0)
    good = [
        (np.zeros(W.shape), np.zeros(b.shape))
        for W, b in zip(model.weights, model.biases)
    ]

    with pytest.raises(ValueError, match=r"^MLP.step: expected one \(dW, db\) pair"):
        model.step(good[:1], lr=0.1)
    with pytest.raises(ValueError, match=r"^MLP.step: gradients of layer 1 must"):
        model.step([good[0], (np.zeros((3, 4)), np.zeros(3))], lr=0.1)
    with pytest.raises(ValueError, match=r"^MLP.step: lr must be finite and greater than 0"):
        model.step(good, lr=0)


def test_mlp_step_default_learning_rates(rng):
    sgd = mla.MLP([2, 2], seed=0, dtype=np.float64, momentum=0.0)
    adam = mla.MLP([2, 2], seed=0, dtype=np.float64, optimizer="adam")
    start = sgd.weights[0].copy()
    gradient = [(np.ones((2, 2)), np.zeros(2))]

    sgd.step(gradient)
    adam.step(gradient)

    np.testing.assert_allclose(sgd.weights[0], start - 0.01)
    # Adam's first step moves each weight by lr (times 1 / (1 + eps)).
    np.testing.assert_allclose(adam.weights[0], start - 0.001, rtol=1e-7)


def test_mlp_reset_optimizer_clears_momentum(rng):
    model = mla.MLP([2, 2], seed=0, dtype=np.float64, momentum=0.9)
    gradient = [(np.ones((2, 2)), np.zeros(2))]
    model.step(gradient, lr=1.0)
    before = model.weights[0].copy()

    model.reset_optimizer()
    model.step(gradient, lr=1.0)

    np.testing.assert_allclose(model.weights[0], before - 1.0)
