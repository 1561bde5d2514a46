"""One module per `ndyn` command; each exposes ``register(subparsers)``."""
