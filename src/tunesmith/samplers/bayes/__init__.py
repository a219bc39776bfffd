"""Gaussian-process Bayesian optimization: model, acquisition, optimizer (three pieces)."""

from .acquisition import Acquisition, PriorDensity, log_ei
from .model import GP, fit_theta, warp
from .optimizer import AcqOptimizer
from .options import BayesOptions
from .sampler import BayesSampler

__all__ = ["GP", "AcqOptimizer", "Acquisition", "BayesOptions", "BayesSampler", "PriorDensity", "fit_theta", "log_ei", "warp"]
