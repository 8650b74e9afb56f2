"""explorer: see why an image classifier decides what it decides."""

__version__ = "0.1.0"
