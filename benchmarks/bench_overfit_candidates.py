"""Other overfitting rules replayed on recorded loss curves, against the trainer's (benchmarks/LOG.md, sig1 pass).

Every rule keeps the trainer's first two conditions (the smoothed gap rose at each of the last
``overfit_patience`` validations, none of which set a new best validation loss) and changes the third:

- current: the rise exceeds 2.5 x the gap's noise over the last 10 validations (the trainer's rule);
- since_best: the noise from the gaps since the best validation loss only (the first epochs' swings left out);
- window6, window5: the noise over the last 6 (5) validations, 3 x;
- since_best_min6: the noise since the best validation, or over the last 6 if fewer, 3 x;
- rel (rel0.15, rel0.25): the current rule, or a rise above 0.2 (0.15, 0.25) x the best validation loss;
- slope: the least-squares slope of the raw gap since the best validation, t > 2.

Curves: the digits MLP and linear model of bench_overfit_signal.py (``--record``), then
plateaus as there (``--kind gauss``), with a drift of -0.0005 per validation of both losses
(``drift``) or with Student-t noise of 3 degrees of freedom (``t3``), at noise levels ``--s``.
``overfit_at`` is the start of the first firing after the run's best validation (the trainer's
summary); ``--summary first`` replays the earlier summary (the first firing, also one before the best).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_candidates.py --record digits
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_overfit_candidates.py --runs 300 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections.abc import Callable

import numpy as np

from tunesmith.train import history as hist

P = hist.OVERFIT_PATIENCE
Rule = Callable[[list[float], list[float]], bool]


def rising_without_best(train: list[float], val: list[float]) -> tuple[list[float], int] | None:
    """The trainer's first two conditions: the smoothed gaps and the best validation's index, or None."""
    n = len(val)
    if n < P + 1:
        return None
    gaps = [g for g in hist.smoothed_gaps(train, list[float | None](val), hist.GAP_SMOOTHING) if g is not None]
    window = gaps[-P - 1:]
    if len(gaps) < n or not all(b > a for a, b in zip(window, window[1:], strict=False)):
        return None
    if min(val[n - P:]) < min(val[:n - P]):
        return None
    return gaps, int(np.argmin(val[:n - P]))


def noise_rule(k: float, start: Callable[[int, int], int]) -> Rule:
    """Rise > k x the noise of the raw gaps from ``start(n, best)`` on."""
    def fires(train: list[float], val: list[float]) -> bool:
        found = rising_without_best(train, val)
        if found is None:
            return False
        gaps, best = found
        s = start(len(val), best)
        return gaps[-1] - gaps[-P - 1] > k * hist.gap_noise(train[s:], val[s:])  # type: ignore[arg-type]
    return fires


def relative_rule(r: float) -> Rule:
    current = RULES["current"]

    def fires(train: list[float], val: list[float]) -> bool:
        found = rising_without_best(train, val)
        return found is not None and (found[0][-1] - found[0][-P - 1] > r * min(val) or current(train, val))
    return fires


def slope_rule(t: float) -> Rule:
    def fires(train: list[float], val: list[float]) -> bool:
        found = rising_without_best(train, val)
        if found is None:
            return False
        y = np.array(val[found[1]:]) - np.array(train[found[1]:])
        x = np.arange(len(y)) - (len(y) - 1) / 2
        b = float((x * y).sum() / (x * x).sum())
        se = math.sqrt(float(((y - y.mean() - b * x) ** 2).sum()) / (len(y) - 2) / float((x * x).sum()))
        return b > 0 and (se == 0 or b / se > t)
    return fires


RULES: dict[str, Rule] = {
    "current": noise_rule(hist.OVERFIT_NOISE, lambda n, best: max(0, n - hist.NOISE_WINDOW)),
    "since_best": noise_rule(2.5, lambda n, best: max(best, n - 10, 0)),
    "window6": noise_rule(3.0, lambda n, best: max(0, n - 6)),
    "window5": noise_rule(3.0, lambda n, best: max(0, n - 5)),
    "since_best_min6": noise_rule(3.0, lambda n, best: max(min(best, n - 6), n - 10, 0)),
}
RULES["rel"] = relative_rule(0.2)
RULES["rel0.15"] = relative_rule(0.15)
RULES["rel0.25"] = relative_rule(0.25)
RULES["slope"] = slope_rule(2.0)


SUMMARY = "after_best"


def overfit_at(rule: Rule, train: list[float], val: list[float]) -> int | None:
    fired = [i for i in range(len(val)) if rule(train[:i + 1], val[:i + 1])]
    return hist.overfit_start(fired, int(np.argmin(val)) if SUMMARY == "after_best" else None, P)


def plateau(rng: np.random.Generator, n: int, s: float, kind: str) -> tuple[list[float], list[float]]:
    if kind == "t3":
        return (list(0.30 + rng.standard_t(3, n) * s / 4 / math.sqrt(3)),
                list(0.35 + rng.standard_t(3, n) * s / math.sqrt(3)))
    drift = -0.0005 * np.arange(n) if kind == "drift" else np.zeros(n)
    return list(0.30 + drift + rng.normal(0, s / 4, n)), list(0.35 + drift + rng.normal(0, s, n))


def record(which: str, path: str | None, seeds: range = range(8)) -> list[dict[str, list[list[float]]]]:
    """Train the wide MLP and the linear model on 150 samples for each seed; their losses (stored at ``path``)."""
    import torch
    from sklearn.datasets import load_breast_cancer, load_digits

    from tunesmith.train import TrainConfig, Trainer

    if which == "digits":
        x, y = load_digits(return_X_y=True)
        xs, ys = torch.as_tensor(x / 16, dtype=torch.float32), torch.as_tensor(y)
        train, val = (xs[:150], ys[:150]), (xs[1000:1500], ys[1000:1500])
    else:  # breast_cancer, a fifth of the training labels flipped
        x, y = load_breast_cancer(return_X_y=True)
        rng = np.random.default_rng(0)
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
        x = (x - x[:150].mean(0)) / x[:150].std(0)
        noisy = np.where(rng.random(150) < 0.2, 1 - y[:150], y[:150])
        xs = torch.as_tensor(x, dtype=torch.float32)
        train, val = (xs[:150], torch.as_tensor(noisy)), (xs[150:550], torch.as_tensor(y[150:550]))
    d, k = xs.shape[1], int(y.max()) + 1
    cfg = TrainConfig(epochs=30, batch_size=32, lr=3e-3)
    out = []
    for seed in seeds:
        runs = {}
        for name, model in (("mlp", lambda: torch.nn.Sequential(
                torch.nn.Linear(d, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512), torch.nn.ReLU(),
                torch.nn.Linear(512, k))), ("linear", lambda: torch.nn.Linear(d, k))):
            torch.manual_seed(seed)
            h = Trainer(model(), cfg).fit(train, val)
            runs[name] = [h.train_losses, [float(v) for v in h.val_losses if v is not None]]
        out.append(runs)
    if path is not None:
        with open(path, "w") as f:
            json.dump(out, f)
    return out


def report(rules: list[str], curves: str, runs: int, seed: int, kind: str, levels: list[float]) -> None:
    rng = np.random.default_rng(seed)
    for n in (20, 50):
        for s in levels:
            cases = [plateau(rng, n, s, kind) for _ in range(runs)]
            rates = {r: sum(overfit_at(RULES[r], t, v) is not None for t, v in cases) / runs for r in rules}
            print(f"{kind} plateau of {n}, s={s}: " + ", ".join(f"{r} {x:.3f}" for r, x in rates.items()), flush=True)
    with open(curves) as f:
        nets = json.load(f)
    for r in rules:
        pairs = [(int(np.argmin(net["mlp"][1])), overfit_at(RULES[r], *net["mlp"])) for net in nets]
        delays = [(30 if at is None else at) - best for best, at in pairs]
        linear = [(int(np.argmin(net["linear"][1])), overfit_at(RULES[r], *net["linear"])) for net in nets]
        fired = sum(at is not None for _, at in linear)
        print(f"{r}: MLP (best, overfit_at) {pairs}, median delay {statistics.median(delays)}, "
              f"linear fired {fired}/{len(nets)} {linear}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--record", choices=("digits", "breast_cancer"), help="train and store the curves, then stop")
    parser.add_argument("--curves", default="overfit_curves.json", help="the recorded curves' file")
    parser.add_argument("--net-seeds", type=int, nargs=2, default=[0, 8], metavar=("FROM", "TO"),
                        help="the torch seeds --record trains (FROM up to TO, not included)")
    parser.add_argument("--rules", nargs="+", default=list(RULES), choices=list(RULES))
    parser.add_argument("--runs", type=int, default=300, help="plateau runs per setting")
    parser.add_argument("--seed", type=int, default=1, help="the plateaus' random seed")
    parser.add_argument("--kind", default="gauss", choices=("gauss", "drift", "t3"))
    parser.add_argument("--s", type=float, nargs="+", default=[0.005, 0.02], help="the validation noise levels")
    parser.add_argument("--summary", default="after_best", choices=("after_best", "first"),
                        help="overfit_at from the first firing after the best validation, or from the first firing")
    args = parser.parse_args()
    global SUMMARY
    SUMMARY = args.summary
    if args.record:
        record(args.record, args.curves, range(*args.net_seeds))
    else:
        report(args.rules, args.curves, args.runs, args.seed, args.kind, args.s)


if __name__ == "__main__":
    main()
