"""Exceptions that the CLI turns into one-line messages and a non-zero exit."""


class LicError(Exception):
    """Base class: anything a user can cause (bad input, bad file, bad option)."""

    exit_code = 2


class InputError(LicError):
    """The input image or folder cannot be used."""


class FormatError(LicError):
    """A .lic file is not valid: wrong magic, bad checksum, truncated, unknown version."""


class ModelError(LicError):
    """Unknown model or quality, or a file made with other weights."""


class OutputError(LicError):
    """The output cannot be written (exists without --force, unwritable, would overwrite input)."""


class TrainingError(LicError):
    """A training run cannot go on (its loss diverged)."""


class Interrupted(LicError):
    """The user stopped a run (Ctrl-C) and what it had done was saved; the exit status a shell gives SIGINT."""

    exit_code = 130
