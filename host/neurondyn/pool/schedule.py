"""Cooling schedules: the temperature tau as a function of the step.

A schedule is written as text, ``KIND:TAU_START:TAU_END:STEPS``, for example
``geometric:30:0.02:4000`` (the default) or ``linear:10:0:2000``.  Trailing
fields may be left out and take the defaults (``geometric``, 30, 0.02, 4000),
so ``geometric``, ``linear:10`` and ``geometric:30:0.02`` are all valid.

Kinds:

- ``geometric``  tau_t = tau_start * (tau_end / tau_start) ** (t / (steps - 1))
                 (exponential cooling; needs tau_end > 0)
- ``linear``     tau_t = tau_start + (tau_end - tau_start) * t / (steps - 1)
                 (tau_end may be 0)

After the last step the annealer always runs a zero-temperature pass
(tau = 0), so tau_end only decides how cold the stochastic part gets.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("geometric", "linear")
DEFAULT_KIND = "geometric"
DEFAULT_TAU_START = 30.0
DEFAULT_TAU_END = 0.02
DEFAULT_STEPS = 4000
MAX_STEPS = 10_000_000


def _fmt(v: float) -> str:
    return "%g" % v


@dataclass(frozen=True)
class Schedule:
    kind: str = DEFAULT_KIND
    tau_start: float = DEFAULT_TAU_START
    tau_end: float = DEFAULT_TAU_END
    steps: int = DEFAULT_STEPS

    def __post_init__(self):
        _check(self.kind, self.tau_start, self.tau_end, self.steps)

    @property
    def text(self) -> str:
        """The canonical text form; ``parse_schedule(s.text) == s``."""
        return "%s:%s:%s:%d" % (self.kind, _fmt(self.tau_start), _fmt(self.tau_end), self.steps)

    def __str__(self) -> str:
        return self.text

    def tau(self, step: int) -> float:
        """Temperature at ``step`` (0 <= step < steps)."""
        if self.steps <= 1:
            return float(self.tau_start)
        f = min(max(step / (self.steps - 1), 0.0), 1.0)
        if self.kind == "geometric":
            return float(self.tau_start * (self.tau_end / self.tau_start) ** f)
        return float(self.tau_start + (self.tau_end - self.tau_start) * f)

    def taus(self):
        return [self.tau(t) for t in range(self.steps)]

    def reheated(self, tau: float) -> "Schedule":
        """The same schedule started from ``tau`` (remelting: heat to tau, cool again)."""
        tau = float(tau)
        if not math.isfinite(tau) or tau <= 0:
            raise ValueError("reheat temperature must be a positive number, got %r" % (tau,))
        end = min(self.tau_end, tau)
        if self.kind == "geometric" and end >= tau:
            end = tau / 10.0
        return Schedule(self.kind, tau, end, self.steps)


def _check(kind, t0, t1, steps):
    if kind not in KINDS:
        raise ValueError("unknown schedule kind %r (use one of: %s)" % (kind, ", ".join(KINDS)))
    for name, v in (("tau_start", t0), ("tau_end", t1)):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError("schedule %s must be a finite number, got %r" % (name, v))
    if not isinstance(steps, int) or isinstance(steps, bool):
        raise ValueError("schedule steps must be an integer, got %r" % (steps,))
    if t0 <= 0:
        raise ValueError("schedule tau_start must be > 0, got %g" % t0)
    if t1 < 0:
        raise ValueError("schedule tau_end must be >= 0, got %g" % t1)
    if kind == "geometric" and t1 <= 0:
        raise ValueError("a geometric schedule needs tau_end > 0, got %g" % t1)
    if t1 > t0:
        raise ValueError("schedule must cool: tau_end (%g) > tau_start (%g)" % (t1, t0))
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError("schedule steps must be between 1 and %d, got %d" % (MAX_STEPS, steps))


def parse_schedule(text=None) -> Schedule:
    """Parse ``KIND[:TAU_START[:TAU_END[:STEPS]]]``; None or "" gives the default.

    A ``Schedule`` passes through unchanged.  Bad text raises ``ValueError``
    with a one-line message naming the problem.
    """
    if isinstance(text, Schedule):
        return text
    if text is None:
        return Schedule()
    if not isinstance(text, str):
        raise ValueError("schedule must be text like 'geometric:30:0.02:4000', got %r" % (text,))
    s = text.strip()
    if not s:
        return Schedule()
    parts = [p.strip() for p in s.split(":")]
    if len(parts) > 4:
        raise ValueError("schedule %r has too many fields (expected KIND:TAU_START:TAU_END:STEPS)"
                         % text)
    kind = parts[0].lower()
    if kind not in KINDS:
        raise ValueError("unknown schedule kind %r in %r (use one of: %s)"
                         % (parts[0], text, ", ".join(KINDS)))
    values = [DEFAULT_TAU_START, DEFAULT_TAU_END]
    for i, name in enumerate(("tau_start", "tau_end")):
        if len(parts) > i + 1:
            try:
                values[i] = float(parts[i + 1])
            except ValueError:
                raise ValueError("schedule %s %r in %r is not a number"
                                 % (name, parts[i + 1], text)) from None
    steps = DEFAULT_STEPS
    if len(parts) > 3:
        try:
            steps = int(parts[3])
        except ValueError:
            raise ValueError("schedule steps %r in %r is not an integer"
                             % (parts[3], text)) from None
    if len(parts) == 2 and values[0] <= DEFAULT_TAU_END:
        # "geometric:0.01": a start below the default end cools to a tenth of it
        values[1] = values[0] / 10.0 if kind == "geometric" else 0.0
    try:
        return Schedule(kind, values[0], values[1], steps)
    except ValueError as exc:
        raise ValueError("bad schedule %r: %s" % (text, exc)) from None
