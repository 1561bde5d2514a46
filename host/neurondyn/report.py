"""What an anneal leaves behind: REPORT.json and the phase-diagram PNG.

The phase diagram is the trajectory of the pool while it cools: temperature
tau, number of atoms, energy and loss against the step.  Reading it shows the
liquid phase (many atoms come and go at high tau), the crystallisation (the
atom count settles) and the final zero-temperature pass.

Both files are rendered in memory and written atomically, so an interrupted
run never leaves half a PNG or half a JSON document behind.  Matplotlib is used
through its Agg canvas directly (no pyplot, no display, no global state).
"""
from __future__ import annotations

import io
import json

import numpy as np

from .data import write_output

HISTORY_KEYS = ("step", "tau", "atoms", "energy", "loss")


def _jsonable(value):
    """numpy scalars/arrays and tuples -> plain JSON types; NaN/inf -> None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if np.isfinite(v) else None
    return value


def build_report(annealer, model, data_path, model_path, formula, extra=None) -> dict:
    """Everything worth keeping about one anneal, as a JSON-able dict.

    The annealer's own ``report_`` is kept whole under ``"annealer"``; the
    trajectory is ``"history"``; the rest is what a reader asks first.
    """
    report = {
        "data": str(data_path),
        "model": str(model_path),
        "inputs": list(model.inputs),
        "outputs": list(model.outputs),
        "k_star": int(annealer.k_star_),
        "saturated": bool(annealer.saturated_),
        "energy": annealer.energy_,
        "loss": annealer.loss_,
        "formula": list(formula),
        "model_json": model.to_dict(),
        "annealer": {k: v for k, v in (getattr(annealer, "report_", {}) or {}).items()
                     if k != "history"},
        "history": list(getattr(annealer, "history_", []) or []),
    }
    if extra:
        report.update(extra)
    return _jsonable(report)


def write_report(path, report: dict) -> None:
    """Write REPORT.json atomically (strict JSON: NaN/inf become null)."""
    text = json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n"
    write_output(path, text.encode("utf-8"), "report")


def history_columns(history) -> dict:
    """The trajectory as arrays keyed by HISTORY_KEYS (missing values -> NaN)."""
    cols = {}
    for key in HISTORY_KEYS:
        vals = []
        for h in history:
            v = h.get(key)
            vals.append(np.nan if v is None else float(v))
        cols[key] = np.asarray(vals, dtype=float)
    return cols


def render_phase_png(history, title="") -> bytes:
    """The phase diagram as PNG bytes: tau, atoms, energy and loss against the step."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = history_columns(history)
    step = cols["step"]
    fig = Figure(figsize=(8, 8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True)
    panels = (("tau", "temperature tau", True), ("atoms", "atoms in the pool", False),
              ("energy", "energy (extended BIC)", False), ("loss", "loss (relative RMSE)", True))
    # the zero-temperature pass (tau = 0) cannot sit on a log axis: mark it instead
    quench = step[cols["tau"] == 0]
    for ax, (key, label, log) in zip(axes, panels):
        y = cols[key]
        if key == "atoms":
            ax.step(step, y, where="post", color="C1")
        else:
            keep = np.isfinite(y) & ((y > 0) if log else True)
            ax.plot(step[keep], y[keep], color="C0" if key != "loss" else "C3")
            if log and np.any(keep):
                ax.set_yscale("log")
        if quench.size:
            ax.axvline(quench[0], color="0.4", linestyle="--", linewidth=0.8)
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, alpha=0.3)
    if quench.size:
        axes[0].annotate("tau = 0 pass", xy=(quench[0], 1), xycoords=("data", "axes fraction"),
                         xytext=(-4, -12), textcoords="offset points", ha="right", fontsize=7)
    axes[-1].set_xlabel("step")
    if title:
        axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_phase_plot(path, history, title="") -> None:
    """Write the phase-diagram PNG atomically."""
    write_output(path, render_phase_png(history, title), "plot")
