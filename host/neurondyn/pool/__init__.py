"""The neuron pool: energy, candidate dictionary, events and cooling schedules.

See ``neurondyn.anneal`` for the annealer that drives them and
docs/annealing.md for how the dynamics works.
"""
from .schedule import Schedule, parse_schedule

__all__ = ["Schedule", "parse_schedule"]
