"""Early stopping benchmark: training compute needed to reach random search's best score.

Task: a small torch MLP on a synthetic credit-scoring table (imbalanced binary
classification, 20 features, 4000 training rows, 4000 validation rows), tuned
over learning rate, weight decay, width, depth and dropout; one epoch is the
unit of compute; the validation ROC AUC is reported after every epoch.

Reference: full-budget random search, 40 trials of ``--max-epochs`` epochs. Its
best validation AUC (any trial, any epoch) is the target; it draws its
configurations from its own seed stream, so no method replays its draws. Every other method
runs trial after trial until one of its reports reaches the target, or until
it has spent as many epochs as the whole reference (then "not reached").
Measured per method and seed: epochs summed over all trials until the target
(paused-then-resumed trials continue, so their epochs are counted once) and the
wall time until then. Medians over seeds; ratios to the reference's total.

``--task finetune`` measures the same on examples/finetune_text.py's task
(all-MiniLM-L6-v2 fine-tuned with AdamW on VADER lexicon words; see
benchmarks/pruning_finetune.py), on CUDA when available, 9 epochs at full
budget by default (``--texts 4894 --train-frac 0.2``: train on 978 words and
validate on the other 3,916 instead of 960/240; its rows are named
``finetune-4894w-train0.2``; ``--train-blocks 1 --precision bf16 --device cpu`` trains only the
last block and the head, like the example's default, with the frozen blocks' outputs computed
once (fp32) and the trained block in bf16 autocast: ~1 s per epoch on one CPU thread, rows named
``finetune-4894w-train0.2-blocks1-bf16``); its pause/resume rows are left out (each
checkpoint of the encoder and its AdamW state is ~130 MB and ASHA pauses
nearly every trial).

Run: ``PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_pruning.py``
(``--seeds 3`` by default; ``--quick`` for a smoke run; ``--time-limit S``
stops after S seconds and reports the seeds whose runs all finished;
``--results F.jsonl`` keeps every raw row (with ``improvements``, the epochs where the
run's best AUC rose, so other targets can be scored from it), ``--report F.md`` the tables,
``--resume F.jsonl`` reuses an earlier run's rows and runs only the missing ones;
``--methods TEXT...`` runs only the methods whose name contains one of the texts, and
then ``--results`` keeps only their rows and the references; ``--controls`` adds control
rows: tunesmith's ASHA and Hyperband fed Optuna RandomSampler's configurations, which
separate what the pruner does from which configurations a seed happens to draw).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pruning_harness import earlier_rows, report, schedule
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

import tunesmith as ts
from tunesmith.pruners import ASHA, Hyperband
from tunesmith.samplers import MultiFidelitySampler, Sampler, Suggestion

torch.set_num_threads(1)
ts.set_verbosity(logging.ERROR)


# -- the task ------------------------------------------------------------------------------
def credit_data(seed: int = 0) -> tuple[torch.Tensor, ...]:
    x, y = make_classification(
        n_samples=8000,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_clusters_per_class=3,
        weights=[0.8, 0.2],
        flip_y=0.05,
        class_sep=0.7,
        random_state=seed,
    )
    x = StandardScaler().fit(x[:4000]).transform(x).astype(np.float32)
    t = torch.from_numpy
    return t(x[:4000]), t(y[:4000].astype(np.float32)), t(x[4000:]), y[4000:]


DATA = credit_data()


@dataclass
class Config:
    lr: float
    weight_decay: float
    width: int
    depth: int
    dropout: float


class Run:
    """One model in training: can be checkpointed to a file and resumed exactly."""

    def __init__(self, cfg: Config, seed: int) -> None:
        torch.manual_seed(seed)
        layers: list[torch.nn.Module] = []
        width_in = DATA[0].shape[1]
        for _ in range(cfg.depth):
            layers += [
                torch.nn.Linear(width_in, cfg.width),
                torch.nn.ReLU(),
                torch.nn.Dropout(cfg.dropout),
            ]
            width_in = cfg.width
        self.model = torch.nn.Sequential(*layers, torch.nn.Linear(width_in, 1))
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        self.order = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        """Train one epoch; return the validation AUC."""
        xtr, ytr, xva, yva = DATA
        self.model.train()
        perm = torch.randperm(len(xtr), generator=self.order)
        for i in range(0, len(xtr), 256):
            idx = perm[i : i + 256]
            self.opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                self.model(xtr[idx])[:, 0], ytr[idx]
            )
            loss.backward()
            self.opt.step()
        self.model.eval()
        with torch.no_grad():
            scores = self.model(xva)[:, 0].numpy()
        return float(roc_auc_score(yva, scores)) if np.isfinite(scores).all() else 0.5

    def save(self, path: str) -> None:
        torch.save(
            {"m": self.model.state_dict(), "o": self.opt.state_dict(), "g": self.order.get_state()},
            path,
        )

    def load(self, path: str) -> None:
        ck = torch.load(path)
        self.model.load_state_dict(ck["m"])
        self.opt.load_state_dict(ck["o"])
        self.order.set_state(ck["g"])


# -- bookkeeping shared by all methods ------------------------------------------------------
class Done(Exception):
    """The target was reached or the compute cap spent: stop the method."""


@dataclass
class Meter:
    target: float
    cap: int
    epochs: int = 0
    best: float = 0.0
    start: float = field(default_factory=time.perf_counter)
    reached_at: tuple[int, float] | None = None
    wall: float = 0.0
    curve: list[float] = field(default_factory=list)

    def improvements(self) -> list[tuple[int, float]]:
        """(epoch, best AUC so far) at each epoch where the best improved: the whole
        best-so-far curve in a few points, so other targets can be scored later."""
        out: list[tuple[int, float]] = []
        last = -np.inf
        for epoch, best in enumerate(self.curve, 1):
            if best > last:
                out.append((epoch, round(best, 6)))
                last = best
        return out

    def tick(self, auc: float) -> None:
        self.epochs += 1
        self.best = max(self.best, auc)
        self.curve.append(self.best)
        if auc >= self.target and self.reached_at is None:
            self.reached_at = (self.epochs, time.perf_counter() - self.start)
        if self.reached_at is not None or self.epochs >= self.cap:
            raise Done


# -- tunesmith ------------------------------------------------------------------------------
SPACE = ts.Space(
    {
        "lr": ts.Float(1e-4, 3e-1, log=True),
        "weight_decay": ts.Float(1e-6, 1e-1, log=True),
        "width": ts.Int(8, 128, log=True),
        "depth": ts.Int(1, 3),
        "dropout": ts.Float(0.0, 0.5),
    }
)


@dataclass(frozen=True)
class Task:
    name: str
    space: ts.Space
    make_run: Callable[[dict[str, Any], int], Any]  # (params, seed) -> .epoch(), .save(), .load()
    pause_resume: bool = True
    device: str = "cpu"


def tabular_task() -> Task:
    return Task("tabular", SPACE, lambda params, seed: Run(Config(**params), seed))


def finetune_task(opts: dict[str, Any]) -> Task:
    import pruning_finetune as ft

    o = ft.Options(**opts)
    return Task(
        "finetune",
        ft.SPACE,
        lambda params, seed: ft.FinetuneRun(params, seed, o),
        pause_resume=False,
        device=ft.device_name(o),
    )


TASK = tabular_task()


def set_task(name: str, opts: dict[str, Any]) -> None:
    """Pool initializer: the task every job of this process runs."""
    global TASK
    torch.set_num_threads(1)
    TASK = finetune_task(opts) if name == "finetune" else tabular_task()


def ts_objective(
    meter: Meter, max_epochs: int, folder: str, seed: int
) -> Callable[[ts.Trial], float]:
    def objective(trial: ts.Trial) -> float:
        run = TASK.make_run(dict(trial.params), seed * 100_000 + trial.number)
        if trial.is_resumed:
            run.load(trial.resume_from)
        auc = 0.0
        for epoch in range(max(trial.start_step, 1), max_epochs + 1):
            auc = run.epoch()
            meter.tick(auc)
            trial.report(auc, epoch)
            decision = trial.decision()
            if decision is ts.Decision.PAUSE:
                path = f"{folder}/t{trial.number}.pt"
                run.save(path)
                trial.set_attr("checkpoint", path)
            if decision is not ts.Decision.CONTINUE:
                raise ts.TrialPruned()
        return auc

    return objective


def run_tunesmith(sampler: Any, pruner: Any, meter: Meter, max_epochs: int, seed: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        study = ts.Study(
            TASK.space, direction="maximize", sampler=sampler, pruner=pruner, seed=seed
        )
        objective = ts_objective(meter, max_epochs, folder, seed)
        try:
            while True:
                study.optimize(objective, n_trials=1, catch=())
        except Done:
            pass


# -- Optuna -------------------------------------------------------------------------------
def run_optuna(
    sampler_name: str, pruner_name: str, meter: Meter, seed: int, *, max_epochs: int
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if pruner_name == "SuccessiveHalvingPruner":
        pruner: Any = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    else:
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=3
        )
    sampler: Any = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler_name == "TPE"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        run = TASK.make_run(optuna_params(trial, TASK.space), seed * 100_000 + trial.number)
        auc = 0.0
        for epoch in range(1, max_epochs + 1):
            auc = run.epoch()
            meter.tick(auc)
            trial.report(auc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return auc

    try:
        while True:
            study.optimize(objective, n_trials=1, catch=())
    except Done:
        pass


def optuna_params(trial: Any, space: ts.Space) -> dict[str, Any]:
    """The same search space through Optuna's suggest API (in the space's order)."""
    out: dict[str, Any] = {}
    for name in space:
        p: Any = space[name]
        if isinstance(p, ts.Categorical):
            out[name] = trial.suggest_categorical(name, list(p.choices))
        elif isinstance(p, ts.Int):
            out[name] = trial.suggest_int(name, p.low, p.high, log=p.log)
        else:
            out[name] = trial.suggest_float(name, p.low, p.high, log=p.log)
    return out


class OptunaRandomStream(Sampler):
    """Replays Optuna ``RandomSampler(seed)``'s configurations in trial order (control rows).

    Trial ``n`` gets the configuration Optuna's random sampler draws for its trial ``n``, so a
    tunesmith pruner and Optuna's run the very same models; only the pruner differs.
    """

    name = "optuna-random-stream"

    def __init__(self, seed: int) -> None:
        import optuna

        super().__init__(seed)
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        self._source = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        self._configs: list[dict[str, Any]] = []

    def suggest(
        self, space: ts.Space, trials: Sequence[ts.FrozenTrial], direction: ts.Direction
    ) -> Suggestion:
        while len(self._configs) <= len(trials):
            t = self._source.ask()
            self._configs.append(optuna_params(t, space))
            self._source.tell(t, 0.0)
        return Suggestion(dict(self._configs[len(trials)]))


# -- the comparison ----------------------------------------------------------------------
CONTROL = "control: "  # rows run only with --controls


def methods(max_epochs: int, pause_resume: bool = True) -> dict[str, Callable[[Meter, int], None]]:
    asha: dict[str, Any] = dict(min_resource=1, reduction_factor=3, max_resource=max_epochs)

    def ts_run(
        sampler: Callable[[int], Any], pruner: Callable[[], Any]
    ) -> Callable[[Meter, int], None]:
        return lambda m, s: run_tunesmith(sampler(s), pruner(), m, max_epochs, s)

    out = {"tunesmith random + ASHA": ts_run(lambda s: "random", lambda: ASHA(**asha))}
    if pause_resume:
        out["tunesmith random + ASHA (pause/resume)"] = ts_run(
            lambda s: "random", lambda: ASHA(pause=True, **asha)
        )
    out["tunesmith random + Hyperband"] = ts_run(lambda s: "random", lambda: Hyperband(**asha))
    mf = lambda s: MultiFidelitySampler("bayes", seed=s)  # noqa: E731
    out["tunesmith bayes + ASHA (complete trials only)"] = ts_run(
        lambda s: "bayes", lambda: ASHA(**asha)
    )
    out["tunesmith bayes + ASHA"] = ts_run(mf, lambda: ASHA(**asha))
    if pause_resume:
        out["tunesmith bayes + ASHA (pause/resume)"] = ts_run(
            mf, lambda: ASHA(pause=True, **asha)
        )
    out["tunesmith bayes + Hyperband"] = ts_run(mf, lambda: Hyperband(**asha))
    mf_tpe = lambda s: MultiFidelitySampler("tpe", seed=s)  # noqa: E731  (BOHB's own model)
    out["tunesmith TPE + ASHA"] = ts_run(mf_tpe, lambda: ASHA(**asha))
    if pause_resume:
        out["tunesmith TPE + ASHA (pause/resume)"] = ts_run(mf_tpe, lambda: ASHA(pause=True, **asha))
    out["tunesmith TPE + Hyperband"] = ts_run(mf_tpe, lambda: Hyperband(**asha))
    # what a user gets without settings: the default sampler, the pruner by name (budget learnt)
    out["tunesmith defaults: pruner='asha'"] = ts_run(lambda s: None, lambda: "asha")
    out["tunesmith defaults: pruner='hyperband'"] = ts_run(lambda s: None, lambda: "hyperband")
    for sampler in ("random", "TPE"):
        for pruner in ("SuccessiveHalvingPruner", "HyperbandPruner"):
            out[f"Optuna {sampler} + {pruner}"] = functools.partial(
                run_optuna, sampler, pruner, max_epochs=max_epochs
            )
    # the same configurations as "Optuna random + ...": tells the pruners apart from the streams
    out[CONTROL + "tunesmith ASHA(curve='last') on Optuna's random stream"] = ts_run(
        OptunaRandomStream, lambda: ASHA(curve="last", **asha)
    )
    out[CONTROL + "tunesmith Hyperband on Optuna's random stream"] = ts_run(
        OptunaRandomStream, lambda: Hyperband(**asha)
    )
    return out


REFERENCE_SEED = 10_000


def reference(n_trials: int, max_epochs: int, seed: int) -> dict[str, Any]:
    """Full-budget random search: its best AUC becomes the target."""
    meter = Meter(target=2.0, cap=n_trials * max_epochs)  # unreachable target: run it all
    # its own seed stream: with the methods' seed, tunesmith's random sampler
    # would redraw the very configurations that set the target
    run_tunesmith("random", None, meter, max_epochs, REFERENCE_SEED + seed)
    best_at = meter.curve.index(meter.best) + 1
    return {
        "method": "reference", "seed": seed, "target": meter.best, "epochs": meter.epochs,
        "wall": time.perf_counter() - meter.start, "epochs_to_best": best_at,
        "device": TASK.device, "improvements": meter.improvements(),
    }  # fmt: skip


def run_method(name: str, seed: int, target: float, cap: int, max_epochs: int) -> dict[str, Any]:
    """One method on one seed: epochs and wall s to the target (None: not reached), best AUC."""
    meter = Meter(target=target, cap=cap)
    methods(max_epochs, TASK.pause_resume)[name](meter, seed)
    epochs, wall = meter.reached_at if meter.reached_at else (None, None)
    return {
        "method": name, "seed": seed, "target": target, "epochs": epochs, "wall": wall,
        "best": meter.best, "spent": meter.epochs, "run_wall": time.perf_counter() - meter.start,
        "device": TASK.device, "improvements": meter.improvements(),
    }  # fmt: skip


def task_label(args: argparse.Namespace) -> str:
    """The rows' task name: "finetune" carries its split when it is not the default 1200 at 80 %,
    and its trained blocks and precision when they are not the default 6 and fp32."""
    if args.task != "finetune" or args.quick:
        return args.task
    label = "finetune"
    if (args.texts, args.train_frac) != (1200, 0.8):
        label += f"-{args.texts}w-train{args.train_frac:g}"
    if args.train_blocks != 6:
        label += f"-blocks{args.train_blocks}"
    if args.precision != "fp32":
        label += f"-{args.precision}"
    return label


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--task", choices=["tabular", "finetune"], default="tabular")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument(
        "--trials", type=int, default=40, help="trials of the full-budget random search"
    )
    ap.add_argument("--max-epochs", type=int, help="full budget (default: 27 tabular, 9 finetune)")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel processes")
    ap.add_argument("--quick", action="store_true", help="smoke run (a few trials, small data)")
    ap.add_argument("--time-limit", type=float, help="seconds; then report the finished seeds")
    ap.add_argument("--texts", type=int, default=1200, help="finetune: VADER words (at most 4894)")
    ap.add_argument(
        "--train-frac", type=float, default=0.8,
        help="finetune: share of the words that train; the rest validate",
    )  # fmt: skip
    ap.add_argument(
        "--train-blocks", type=int, default=6, choices=range(1, 7),
        help="finetune: train the last K of the 6 blocks and the head (the lower ones cached)",
    )  # fmt: skip
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"], help="finetune")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16"], help="finetune")
    ap.add_argument("--results", help="write every raw row here (JSON lines)")
    ap.add_argument("--report", help="write the Markdown tables here")
    ap.add_argument(
        "--resume", help="an earlier --results file: keep its rows, run only the missing ones"
    )
    ap.add_argument(
        "--methods", nargs="+", metavar="TEXT",
        help="run only the methods whose name contains one of these texts (default: all)",
    )  # fmt: skip
    ap.add_argument(
        "--controls", action="store_true",
        help="also run the control rows: tunesmith's pruners on Optuna's random stream",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if not 0 < args.train_frac < 1:
        ap.error(f"--train-frac must be between 0 and 1 (exclusive), got {args.train_frac}")
    if args.max_epochs is None:
        args.max_epochs = 27 if args.task == "tabular" else 9
    if args.quick:
        if args.task == "tabular":
            args.trials, args.max_epochs = 10, 9
        else:
            args.trials, args.max_epochs, args.texts = 6, 3, 64
    names = list(methods(args.max_epochs, pause_resume=args.task == "tabular"))
    if not args.controls:
        names = [n for n in names if not n.startswith(CONTROL)]
    if args.methods:
        names = [n for n in names if any(text in n for text in args.methods)]
        if not names:
            ap.error(f"no method name contains any of {args.methods}")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"torch {torch.__version__}; {args}")
    rows: list[dict[str, Any]] = []
    cap = args.trials * args.max_epochs
    label = task_label(args)
    done = earlier_rows(args.resume, label, cap) if args.resume else []
    out = open(args.results, "w") if args.results else None  # noqa: SIM115

    def emit(row: dict[str, Any]) -> None:
        row = {"task": label, "cap": cap, **row}
        rows.append(row)
        print(f"  {row}", flush=True)  # progress, in case of a time limit
        if out:
            out.write(json.dumps(row) + "\n")
            out.flush()

    t0 = time.perf_counter()
    try:
        schedule(args, names, emit, reference, run_method, set_task, done)
    finally:
        if out:
            out.close()
    text = report(rows, names, args, started, time.perf_counter() - t0)
    print("\n" + text)
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
