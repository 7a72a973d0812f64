"""Errors a batch job raises for things the caller can fix (a bad source, an output directory
that belongs to another job). Imports nothing of the project but the encoders' error base."""

from encoders.errors import JointspaceError


class JobError(JointspaceError, ValueError):
    """A job that cannot run as asked; the message says what to change."""
