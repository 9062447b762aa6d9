"""kflib.learned: shapes, input errors, a short training run, and the
differentiable Kalman filter against kflib.kalman_filter."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kflib import em, kalman_filter, simulate, steady_state  # noqa: E402
from kflib.models import constant_velocity, local_level  # noqa: E402
from kflib.learned import (DifferentiableKalmanFilter, KalmanInspiredCell,  # noqa: E402
                           KalmanInspiredRNN, LearnedGainFilter, LSTMFilter,
                           as_sequences, default_device, fit, mse, simulate_batch)

torch.set_num_threads(1)
RW = local_level(1.0, 1.0, P0=0.0)


def test_simulate_batch_shapes_seed_and_moments():
    cv = constant_velocity(1.0, q=0.1, r=2.0, x0=[0.0, 1.0], P0=np.eye(2))
    x, y = simulate_batch(cv, 5, 7, seed=3)
    assert x.shape == (5, 7, 2) and y.shape == (5, 7, 1)
    x2, _ = simulate_batch(cv, 5, 7, seed=3)
    assert torch.equal(x, x2)
    # Var(x_t) = t q for the random walk started at a known 0; Var(y - x) = r
    x, y = simulate_batch(local_level(1.0, 2.0, P0=0.0), 4000, 20, seed=0,
                          dtype=torch.float64)
    np.testing.assert_allclose(x[:, -1, 0].var().item(), 20.0, rtol=0.08)
    np.testing.assert_allclose((y - x).var().item(), 2.0, rtol=0.03)


@pytest.mark.parametrize("make", [
    lambda: LSTMFilter(m=2, n=3, hidden_size=8),
    lambda: LSTMFilter(m=2, n=3, hidden_size=8, bidirectional=True),
    lambda: KalmanInspiredRNN(m=2, n=3, hidden_size=8),
])
def test_shapes(make):
    net = make()
    out = net(torch.randn(4, 11, 2))
    assert out.shape == (4, 11, 3)


def test_learned_gain_shapes_and_gain():
    cv = constant_velocity(1.0, q=0.1, r=2.0, x0=[0.0, 0.0], P0=np.eye(2))
    net = LearnedGainFilter(cv, hidden_size=8)
    out, K = net(torch.randn(3, 6, 1), return_gain=True)
    assert out.shape == (3, 6, 2) and K.shape == (3, 6, 2, 1)
    # the head starts at a constant gain of 0.5
    assert torch.allclose(K, torch.full_like(K, 0.5))


def test_input_errors_are_clear():
    net = LSTMFilter(m=1, n=1, hidden_size=4)
    with pytest.raises(ValueError, match=r"shape \(batch, T, 1\); got \(10, 1\).*batch axis"):
        net(torch.randn(10, 1))
    with pytest.raises(ValueError, match=r"shape \(batch, T, 1\); got \(2, 10, 3\)"):
        net(torch.randn(2, 10, 3))
    with pytest.raises(ValueError, match="NaN"):
        net(torch.full((1, 3, 1), float("nan")))
    with pytest.raises(TypeError, match="real numeric"):
        as_sequences(np.array([["a"]]))
    with pytest.raises(ValueError, match="input_scale"):
        LSTMFilter(input_scale=0.0)
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMFilter(hidden_size=0)
    x, y = simulate_batch(RW, 4, 5)
    with pytest.raises(ValueError, match="same \\(batch, T\\)"):
        fit(net, y, x[:3], progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        fit(net, y, x, optimizer="lbfgs", progress=False)
    with pytest.raises(ValueError, match="both y_val and x_val"):
        fit(net, y, x, y_val=y, progress=False)
    with pytest.raises(ValueError, match="positive definite"):
        DifferentiableKalmanFilter(local_level(0.0, 1.0))
    with pytest.raises(ValueError, match="learn"):
        DifferentiableKalmanFilter(RW, learn=("F",))


def test_forward_draws_no_random_numbers():
    net = KalmanInspiredRNN(hidden_size=8)
    y = torch.randn(2, 5, 1)
    torch.manual_seed(0)
    a = net(y)
    torch.manual_seed(1)
    b = net(y)
    assert torch.equal(a, b)
    names = {n for n, _ in KalmanInspiredCell(1, 4).named_parameters()}
    assert {"A", "C", "G"} <= names


def test_default_device():
    assert default_device().type in ("cpu", "cuda")


def test_short_training_beats_raw_measurements():
    x, y = simulate_batch(RW, 512, 50, seed=0)
    xv, yv = simulate_batch(RW, 256, 50, seed=1)
    raw = mse(yv, xv)
    net = LSTMFilter(hidden_size=16, seed=0)
    res = fit(net, y, x, yv, xv, epochs=6, lr=1e-2, batch_size=32, seed=0,
              progress=False)
    with torch.no_grad():
        learned = mse(net(yv), xv)
    assert res.best_epoch >= 1 and len(res.val_loss) == len(res.train_loss)
    assert learned < 0.85 * raw
    assert np.isclose(learned, res.best_val_loss, rtol=1e-5)


def test_learned_gain_training_beats_raw_measurements():
    x, y = simulate_batch(RW, 256, 40, seed=0)
    xv, yv = simulate_batch(RW, 128, 40, seed=1)
    net = LearnedGainFilter(RW, hidden_size=8, seed=0)
    fit(net, y, x, yv, xv, epochs=3, lr=1e-2, batch_size=64, progress=False)
    with torch.no_grad():
        assert mse(net(yv), xv) < 0.8 * mse(yv, xv)


def test_fit_restore_best_false_keeps_the_last_epoch():
    # SGD with a large step on one sequence: the loss does not fall monotonically,
    # so the best and the last epoch differ and the two settings must disagree.
    x, y = simulate_batch(RW, 1, 30, seed=0)
    kept = {}
    for restore in (True, False):
        net = LSTMFilter(hidden_size=8, input_scale=1.0, seed=0)
        res = fit(net, x, x, epochs=40, batch_size=1, lr=0.5, optimizer="sgd",
                  patience=40, clip=None, restore_best=restore, progress=False)
        with torch.no_grad():
            kept[restore] = float(((net(x) - x) ** 2).mean())
        if restore:
            best = min(res.val_loss)
            assert res.best_epoch == res.val_loss.index(best) + 1
            np.testing.assert_allclose(kept[restore], best, rtol=1e-5)
        else:
            assert res.best_epoch == len(res.val_loss) == 40
            np.testing.assert_allclose(kept[restore], res.val_loss[-1], rtol=1e-5)
    assert kept[False] > kept[True]
    with pytest.raises(TypeError, match="restore_best"):
        fit(LSTMFilter(hidden_size=4), y, x, restore_best="no", progress=False)


def test_mse_accepts_read_only_arrays_without_warning():
    a = np.arange(6.0).reshape(1, 3, 2)
    a.flags.writeable = False
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mse(a, np.zeros((1, 3, 2))) == pytest.approx(np.mean(a**2))
        assert mse(torch.zeros(1, 3, 2), a) == pytest.approx(np.mean(a**2))


def test_fit_is_seeded():
    x, y = simulate_batch(RW, 64, 20, seed=0)
    runs = []
    for _ in range(2):
        net = LSTMFilter(hidden_size=4, seed=5)
        runs.append(fit(net, y, x, epochs=2, seed=7, progress=False).train_loss)
    assert runs[0] == runs[1]


@pytest.mark.parametrize("which", ["local level", "constant velocity"])
def test_differentiable_kf_equals_kflib(which):
    if which == "local level":
        model = local_level(0.7, 1.9, x0=0.3, P0=2.0)
    else:
        model = constant_velocity(0.5, q=0.3, r=4.0, x0=[1.0, -0.5],
                                  P0=np.diag([3.0, 1.0]))
    rng = np.random.default_rng(0)
    y = np.stack([simulate(model, 60, rng=rng)[1] for _ in range(3)])
    ref = kalman_filter(model, y)
    dkf = DifferentiableKalmanFilter(model)
    with torch.no_grad():
        x_filt, ll = dkf(torch.from_numpy(y))
    np.testing.assert_allclose(ll.numpy(), ref.loglik, rtol=1e-11)
    np.testing.assert_allclose(x_filt.numpy(), ref.x_filt, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(dkf.Q.detach().numpy(), model.Q, rtol=1e-12)


def test_differentiable_kf_gradient_matches_finite_differences():
    model = local_level(0.7, 1.9, P0=1.0)
    _, y = simulate_batch(model, 2, 30, seed=0, dtype=torch.float64)
    dkf = DifferentiableKalmanFilter(model)
    loss = dkf.training_loss(y)
    loss.backward()
    g = dkf.R_param.grad.item()
    h = 1e-6
    with torch.no_grad():
        dkf.R_param += h
        up = dkf.training_loss(y).item()
        dkf.R_param -= 2 * h
        down = dkf.training_loss(y).item()
    np.testing.assert_allclose(g, (up - down) / (2 * h), rtol=1e-6)


def test_differentiable_kf_lands_where_em_lands():
    # Gradient descent on -log L and EM (an independent route) both find the MLE.
    _, y = simulate_batch(RW, 10, 60, seed=2, dtype=torch.float64)
    start = local_level(0.3, 3.0, P0=0.0)
    ref = em(y.numpy(), start, n_iter=2000, tol=1e-12).model
    dkf = DifferentiableKalmanFilter(start)
    res = fit(dkf, y, None, epochs=100, batch_size=10, lr=0.1, patience=100,
              progress=False, clip=None)
    np.testing.assert_allclose(dkf.Q.item(), ref.Q[0, 0], rtol=0.02)
    np.testing.assert_allclose(dkf.R.item(), ref.R[0, 0], rtol=0.02)
    assert res.train_loss[-1] < res.train_loss[0]
    fitted = dkf.to_model(start)
    assert steady_state(fitted)[1][0, 0] > 0


@pytest.mark.parametrize("change,what", [(dict(c=[0.5]), "intercept c"), (dict(d=[1.0]), "intercept d"),
                                         (dict(diffuse=True), "diffuse"), (dict(a1=[0.0], P1=[[1.0]]), "a1, P1")])
def test_learned_refuses_models_it_would_run_wrong(change, what):
    from kflib import LinearGaussianSSM
    from kflib.learned import DifferentiableKalmanFilter, LearnedGainFilter, simulate_batch
    base = dict(F=[[0.9]], H=[[1.0]], Q=[[0.1]], R=[[1.0]])
    start = {} if {"diffuse", "a1"} & set(change) else dict(x0=[0.0], P0=[[1.0]])
    model = LinearGaussianSSM(**base, **start, **change)
    for call in (lambda: simulate_batch(model, 2, 5), lambda: LearnedGainFilter(model),
                 lambda: DifferentiableKalmanFilter(model)):
        with pytest.raises(ValueError, match=what):
            call()
