"""The image renderer's search for an installed font that has the characters matplotlib's font lacks.

Where a name has characters the image's font lacks (a study named in Chinese), ``mpl_render._font_with`` looks
through matplotlib's font list, once a process, for a font that has them. Two source trees side by side, each
measured in a fresh process (alternating, ``--rounds`` times; medians): the first search of the process, and the
first ``plots.save`` of an importance chart whose name needs that font (the search and both drawings).

The lists: ``here``, this machine's matplotlib font list as it is; ``+cjk``, the same with ``--cjk`` synthetic
fonts added (built with fontTools, matplotlib's dependency: each maps 45,000 code points, as Noto Sans CJK does,
named "Synthetic CJK n", after most families in name order). The characters: ``found`` ("学习率模型", which the
synthetic fonts have; none of this machine's) and ``none`` (an emoji, which no listed font has: every font asked).

Decides (registered before the first comparison): the ``first search`` on ``+cjk none`` (a machine with CJK fonts
drawing characters no font has, every file read), summary B/A of the medians; every cell is reported.

    OMP_NUM_THREADS=1 PYTHONPATH=src nice -n 10 python benchmarks/bench_font_search.py --trees <A>/src <B>/src --rounds 5
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_ties_ranking import run_trees, said_trees, tree_parser  # noqa: E402

CJK_CODES = 45_000
TEXTS = {"found": "学习率_模型", "none": "lr🛸"}
CELLS = [("here", "found"), ("here", "none"), ("+cjk", "found"), ("+cjk", "none")]


def build_cjk(folder: Path, n: int) -> list[str]:
    """``n`` copies of one font mapping ``CJK_CODES`` code points (the CJK blocks from U+3400 on) to a square."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    pen = TTGlyphPen(None)
    for point in ((100, 0), (100, 700), (900, 700), (900, 0)):
        (pen.lineTo if point != (100, 0) else pen.moveTo)(point)
    pen.closePath()
    codes = [*range(0x3400, 0xA000), *range(0x20000, 0x20000 + CJK_CODES - (0xA000 - 0x3400))]
    fb = FontBuilder(1000, isTTF=True)
    fb.setupGlyphOrder([".notdef", "box"])
    fb.setupCharacterMap(dict.fromkeys(codes, "box"))
    fb.setupGlyf({".notdef": TTGlyphPen(None).glyph(), "box": pen.glyph()})
    fb.setupHorizontalMetrics({".notdef": (1000, 0), "box": (1000, 100)})
    fb.setupHorizontalHeader(ascent=800, descent=-200)
    paths = []
    for i in range(n):
        fb.setupNameTable({"familyName": f"Synthetic CJK {i}", "styleName": "Regular"})
        fb.setupOS2()
        fb.setupPost()
        path = folder / f"cjk{i}.ttf"
        fb.save(str(path))
        paths.append(str(path))
    return paths


def measure(spec: str) -> dict[str, float]:
    """In this process: the list ``spec`` names (``here`` or ``+cjk:<folder>``), then the first search for
    each text (in its own process each: the search caches) is one run; here, the search and the save."""
    from matplotlib import font_manager

    from tunesmith import plots
    from tunesmith.importance import Effect, Importances
    from tunesmith.plots import mpl_render

    kind, _, rest = spec.partition(":")
    text, folder = rest.split(":", 1) if ":" in rest else (rest, "")
    if kind == "+cjk":
        for path in sorted(Path(folder).glob("cjk*.ttf")):
            font_manager.fontManager.addfont(str(path))
    chars = {c for c in TEXTS[text] if not c.isascii() and c != "_"}
    start = time.perf_counter()
    mpl_render._font_with(chars)
    search = time.perf_counter() - start
    mpl_render.__dict__.get("_CHARS", {}).clear()
    mpl_render.__dict__.get("_HAS", {}).clear()
    imp = Importances("fanova", (Effect((TEXTS[text],), 0.7, 0.05), Effect(("x",), 0.3, 0.02)), (), 50)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        plots.save(plots.importance_bars(imp), os.path.join(tmp, "i.png"))
        save = time.perf_counter() - start
    return {"first search": search, "first save": save}


def main() -> None:
    ap = tree_parser(__doc__)
    ap.add_argument("--cjk", type=int, default=10, help="synthetic CJK-sized fonts added for the +cjk list")
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return
    trees = said_trees(args)
    print(f"{'list':>5} {'text':>6} {'step':>13} {'A':>8} {'B':>8} {'B/A':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        build_cjk(Path(tmp), args.cjk)
        for kind, text in CELLS:
            spec = f"{kind}:{text}" + (f":{tmp}" if kind == "+cjk" else "")
            runs = run_trees(__file__, trees, args.rounds, spec)
            for step in ("first search", "first save"):
                a, b = (statistics.median(r[step] for r in runs[i]) for i in (0, 1))
                print(f"{kind:>5} {text:>6} {step:>13} {a:8.4f} {b:8.4f} {b / a:6.2f}", flush=True)


if __name__ == "__main__":
    main()
