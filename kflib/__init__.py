"""kflib: the course's reference implementation of linear-Gaussian state-space
models -- simulation, the Kalman filter, the RTS smoother and the steady state.

    >>> import numpy as np
    >>> from kflib import LinearGaussianSSM, simulate, kalman_filter, rts_smoother
    >>> model = LinearGaussianSSM(F=[[1.0]], H=[[1.0]], Q=[[1.0]], R=[[1.0]],
    ...                           x0=[0.0], P0=[[1.0]])
    >>> x, y = simulate(model, 100, rng=np.random.default_rng(0))
    >>> filt = kalman_filter(model, y)
    >>> smooth = rts_smoother(model, filt)
"""

from . import anomaly, diffuse, models, nonlinear, structural
from .diffuse import DiffuseFilterResult
from .disturbance import DisturbanceResult, disturbance_smoother
from .em import ConvergenceWarning, EMResult, em
from .filter import FilterResult, kalman_filter, reference_filter
from .forecast import ForecastResult, forecast
from .model import LinearGaussianSSM
from .simulate import simulate
from .smoother import ConditioningWarning, SmootherResult, reference_smoother, rts_smoother
from .steady_state import steady_state

__all__ = ["LinearGaussianSSM", "simulate", "kalman_filter", "rts_smoother",
           "reference_filter", "reference_smoother",
           "steady_state", "em", "forecast", "disturbance_smoother", "FilterResult",
           "DiffuseFilterResult", "SmootherResult", "ForecastResult", "DisturbanceResult", "EMResult",
           "ConvergenceWarning", "ConditioningWarning", "models",
           "nonlinear", "structural", "anomaly", "diffuse"]
__version__ = "0.1.0"


def __getattr__(name):
    # kflib.learned needs torch; import it only when it is asked for
    if name == "learned":
        import importlib
        return importlib.import_module(".learned", __name__)
    raise AttributeError(f"module 'kflib' has no attribute {name!r}")
