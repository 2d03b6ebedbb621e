"""failwell: an inference gateway that keeps AI services answering when models fail."""

__version__ = "0.1.0"
