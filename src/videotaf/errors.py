"""The failures a user can fix, as opposed to bugs.

Every :class:`VideotafError` carries a one-line message naming the file or field and what was expected. The
command line prints it as ``error: <message>`` and exits with status 2 (a traceback only with ``--debug`` or
``VIDEOTAF_DEBUG=1``); see :mod:`videotaf.cli` for the other exit statuses.
"""

from __future__ import annotations


class VideotafError(Exception):
    """An expected failure: bad input, a refused action. The message is one line and names the file or field."""


class RunExistsError(VideotafError):
    """The output directory already holds a run and neither resuming nor overwriting was asked for."""


class OutputExistsError(VideotafError):
    """An output file or directory exists and overwriting it was not asked for."""


class OutputLockedError(VideotafError):
    """Another live process is writing into the output directory (its PID and command are named)."""


class TrainingDivergedError(VideotafError):
    """A loss term or the weights became non-finite; the run stopped with its last finite checkpoint kept.

    The command line exits with its own status (4, :mod:`videotaf.cli`), not the bad-input status 2."""
