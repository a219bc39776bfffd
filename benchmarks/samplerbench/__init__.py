"""Side-by-side benchmark of tunesmith's samplers against Optuna, Hyperopt and
scikit-optimize on BBOB functions and real scikit-learn tuning tasks.

Modules: ``problems`` (objectives and their tunesmith spaces), ``spaces``
(tunesmith Space -> each peer's space), ``optimizers`` (one adapter per
optimizer), ``runner`` (jobs, processes, the results file), ``report``
(Markdown tables), ``overhead`` (time per suggestion at N trials).
Entry point: ``benchmarks/bench_samplers.py``.
"""
