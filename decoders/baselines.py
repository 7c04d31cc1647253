"""The classic decoders an SNN must beat: the Wiener filter (ridge over lagged bins) and the
velocity Kalman filter of intracortical BCIs.

References
----------
Wiener filter: Warland, Reinagel & Meister (1997), J Neurophysiol 78:2336; as a BCI baseline in
Glaser et al. (2020), eNeuro 7:ENEURO.0506-19.2020.
Kalman filter: Wu, Gao, Bienenstock, Donoghue & Black (2006), Neural Comput 18:80, fitted by least
squares: ``y_t = A y_{t-1} + w``, ``x_t = H y_t + q`` with ``w ~ N(0, W)``, ``q ~ N(0, Q)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bci.checks import ensure_float, ensure_int
from decoders.base import Decoder, FloatArray
from decoders.errors import DecoderConfigError


def lagged(Xn: FloatArray, n_lags: int) -> FloatArray:
    """Rows ``[x_t, x_{t-1}, ..., x_{t-n_lags+1}]`` (zeros before the first bin: the reset state)."""
    n, u = Xn.shape
    out = np.zeros((n, u * n_lags))
    for k in range(n_lags):
        out[k:, k * u : (k + 1) * u] = Xn[: n - k]
    return out


def ridge(A: FloatArray, B: FloatArray, alpha: float) -> tuple[FloatArray, FloatArray]:
    """Weights and intercept of ``B ~ A @ W + b`` with an L2 penalty ``alpha`` on ``W``."""
    am, bm = A.mean(axis=0), B.mean(axis=0)
    Ac, Bc = A - am, B - bm
    G = Ac.T @ Ac + alpha * np.eye(A.shape[1])
    W = np.linalg.solve(G, Ac.T @ Bc)
    return W, bm - am @ W


class WienerDecoder(Decoder):
    """Linear regression of the outputs on the last ``n_lags`` bins (a Wiener filter), ridge-penalised.

    Parameters
    ----------
    n_lags : int
        Bins of history, the current one included (5 x 20 ms = 100 ms by default).
    alpha : float or None
        L2 penalty in normalised units; None picks it from ``(0.1, 1, 10, 100, 1000)`` on the last
        20% of the training data, then refits on all of it.
    """

    kind = "wiener"
    scale_outputs = False

    def __init__(self, n_lags: int = 5, alpha: float | None = None) -> None:
        super().__init__()
        self.n_lags = ensure_int(n_lags, "n_lags", minimum=1, error=DecoderConfigError)
        self.alpha = (
            None
            if alpha is None
            else ensure_float(alpha, "alpha", minimum=0.0, error=DecoderConfigError)
        )
        self.weights = np.zeros((0, 0))
        self.intercept = np.zeros(0)

    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:
        A = lagged(Xn, self.n_lags)
        alpha = self.alpha
        if alpha is None:
            cut = int(0.8 * len(A))
            best = np.inf
            for a in (0.1, 1.0, 10.0, 100.0, 1000.0):
                W, b = ridge(A[:cut], Yn[:cut], a)
                err = float(np.mean((A[cut:] @ W + b - Yn[cut:]) ** 2))
                if err < best:
                    best, alpha = err, a
        self.alpha_ = float(alpha)  # type: ignore[arg-type]
        self.weights, self.intercept = ridge(A, Yn, self.alpha_)

    def reset(self) -> None:
        self._history = np.zeros((self.n_lags, self.n_units))

    def _step(self, xn: FloatArray) -> FloatArray:
        self._history = np.roll(self._history, 1, axis=0)
        self._history[0] = xn
        return np.asarray(self._history.reshape(-1) @ self.weights + self.intercept)

    def _predict(self, Xn: FloatArray) -> FloatArray:
        return np.asarray(lagged(Xn, self.n_lags) @ self.weights + self.intercept)

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        return {"n_lags": self.n_lags, "alpha": self.alpha_}, {
            "weights": self.weights,
            "intercept": self.intercept,
        }

    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        self.n_lags = int(params["n_lags"])
        self.alpha_ = float(params["alpha"])
        self.weights, self.intercept = arrays["weights"], arrays["intercept"]

    @property
    def synaptic_ops(self) -> dict[str, float]:
        """Dense multiply-accumulates per bin (every weight, every bin)."""
        return {"macs": float(self.weights.size), "acs": 0.0}


class KalmanDecoder(Decoder):
    """The velocity Kalman filter of Wu et al. (2006): outputs are the hidden state, counts the
    observation; all four matrices fitted by least squares on the training data.

    Parameters
    ----------
    ridge_alpha : float
        Small L2 penalty on the observation model ``H`` (normalised units), for units that barely
        fire in the training data.
    """

    kind = "kalman"
    scale_outputs = False

    def __init__(self, ridge_alpha: float = 1.0) -> None:
        super().__init__()
        self.ridge_alpha = ensure_float(
            ridge_alpha, "ridge_alpha", minimum=0.0, error=DecoderConfigError
        )

    def _fit(self, Xn: FloatArray, Yn: FloatArray) -> None:
        # state with a constant term, so a non-zero mean output needs no extra bias
        S = np.column_stack([Yn, np.ones(len(Yn))])
        d = S.shape[1]
        A = np.linalg.lstsq(S[:-1], S[1:], rcond=None)[0].T
        A[-1] = 0.0
        A[-1, -1] = 1.0
        resid = S[1:] - S[:-1] @ A.T
        W = np.cov(resid.T, bias=True).reshape(d, d)
        W[-1, :] = W[:, -1] = 0.0
        H = np.linalg.solve(S.T @ S + self.ridge_alpha * np.eye(d), S.T @ Xn).T
        q = Xn - S @ H.T
        Q = np.cov(q.T, bias=True).reshape(Xn.shape[1], Xn.shape[1])
        Q += 1e-6 * np.eye(Q.shape[0])
        self.A, self.W, self.H, self.Q = A, W, H, Q
        # initial state: the training mean (exactly known constant), its spread as uncertainty
        self.x0 = np.append(Yn.mean(axis=0), 1.0)
        P0 = np.zeros((d, d))
        P0[:-1, :-1] = np.cov(Yn.T, bias=True).reshape(d - 1, d - 1)
        self.P0 = P0

    def reset(self) -> None:
        if hasattr(self, "x0"):
            self._x = self.x0.copy()
            self._P = self.P0.copy()

    def _step(self, xn: FloatArray) -> FloatArray:
        A, H = self.A, self.H
        x = A @ self._x
        P = A @ self._P @ A.T + self.W
        S = H @ P @ H.T + self.Q
        K = np.linalg.solve(S, H @ P).T  # P H' S^-1 (S, P symmetric)
        self._x = x + K @ (xn - H @ x)
        self._P = P - K @ H @ P
        return np.asarray(self._x[:-1])

    def _state(self) -> tuple[dict[str, Any], dict[str, FloatArray]]:
        names = ("A", "W", "H", "Q", "x0", "P0")
        return {"ridge_alpha": self.ridge_alpha}, {n: getattr(self, n) for n in names}

    def _from_state(self, params: dict[str, Any], arrays: dict[str, FloatArray]) -> None:
        self.ridge_alpha = float(params["ridge_alpha"])
        for name, value in arrays.items():
            setattr(self, name, value)

    @property
    def synaptic_ops(self) -> dict[str, float]:
        """Multiply-accumulates per bin of the filter's update (a full gain update each bin)."""
        d, u = self.A.shape[0], self.H.shape[0]
        # predict: A x, A P A'; gain: H P H', solve (u^3 / 3 + u^2 d), update
        macs = d * d + 2 * d**3 + 2 * u * d * d + u**3 / 3 + u * u * d + 2 * u * d + d * d * u
        return {"macs": float(macs), "acs": 0.0}
