"""Errors the encoder layer raises for things the caller can fix.

Owns the exception hierarchy that every layer above (CLI, service, jobs) maps to a one-line message
and an exit code or HTTP status. Imports nothing from the project.
"""


class JointspaceError(Exception):
    """Base class: a problem with the caller's input or configuration, never a bug."""


class InputError(JointspaceError, ValueError):
    """An input (text, image bytes, file) that cannot be embedded as given."""


class ModelSpecError(JointspaceError, ValueError):
    """A model spec string that does not parse or names nothing we can load."""


class ModelLoadError(JointspaceError, RuntimeError):
    """A well-formed spec whose weights could not be loaded (missing file, no network, bad file)."""


class UnsupportedModality(JointspaceError, ValueError):
    """The model has no tower for the requested modality."""
