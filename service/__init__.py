"""Image Factory: resize and re-encode images on the fly, with a disk cache."""

__version__ = "0.1.0"
