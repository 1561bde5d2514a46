"""neuron-dynamics: grow power-law models by annealing a neuron pool, serve them on microcontrollers."""
from .model import Model, InvalidInput, choose_channels

__version__ = "0.1.0"
__all__ = ["Model", "InvalidInput", "choose_channels", "__version__"]
