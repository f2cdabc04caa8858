"""Errors the trainer reports as one line and a non-zero exit (never a traceback)."""


class DataError(ValueError):
    """The dataset is missing, malformed or inconsistent; the message names the class or file."""


class ConfigError(ValueError):
    """A hyperparameter or flag is invalid."""
