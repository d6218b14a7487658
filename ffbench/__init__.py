"""ffbench: reproduce and extend the MNIST table of the Notes on the Forward-Forward Algorithm."""

__version__ = "0.1.0"
