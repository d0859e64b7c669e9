"""Exceptions of the revl package.

Every failing call of the C library raises :class:`Error` (or a subclass chosen by the status):
``.status`` is the C status code (a negative ``revl_status``), ``.message`` the one-line message
the handle kept for its last failure (or a message written by this package), ``.function`` the C
function (or Python method) that failed.  The subclasses also derive from the matching built-in
exception, so ``except ValueError`` catches bad arguments, ``except MemoryError`` a failed
allocation and ``except OSError`` an unreadable file.
"""

OK = 0
ERR_INVALID = -1
ERR_NOMEM = -2
ERR_CALLBACK = -3
ERR_RANGE = -4
ERR_STATE = -5
ERR_INEXACT = -6
ERR_IO = -7

_STATUS_NAMES = {
    OK: "ok",
    ERR_INVALID: "invalid argument",
    ERR_NOMEM: "out of memory",
    ERR_CALLBACK: "callback failed",
    ERR_RANGE: "value not finite or outside the fixed-point range",
    ERR_STATE: "call out of order",
    ERR_INEXACT: "reversal not exact",
    ERR_IO: "file unreadable or malformed",
}


class Error(Exception):
    """A revl call failed.  ``status``: the C status code; ``message``: what and where."""

    def __init__(self, status, message, function=None):
        self.status = int(status)
        self.message = message
        self.function = function
        name = _STATUS_NAMES.get(self.status, "unknown status")
        where = f"{function}: " if function and not (message or "").startswith(function) else ""
        text = f"{where}{message}" if message else f"{where}{name}"
        super().__init__(f"{text} [{name}, status {self.status}]")


class InvalidError(Error, ValueError):
    """REVL_ERR_INVALID: a bad argument (wrong shape, NULL, gamma outside [2^-16, 1], ...)."""


class NoMemoryError(Error, MemoryError):
    """REVL_ERR_NOMEM: an allocation failed."""


class CallbackError(Error):
    """REVL_ERR_CALLBACK: a callback returned nonzero without a Python exception to show, or a
    built-in model's own check failed in its callback (the MLP's training set changed, a
    data-parallel rank's contribution was NaN): the message says which."""


class RangeError(Error, ArithmeticError):
    """REVL_ERR_RANGE: NaN/Inf, or a value outside the fixed-point range."""


class StateError(Error):
    """REVL_ERR_STATE: calls in the wrong order, a closed handle, or a handle already in use."""


class InexactError(Error):
    """REVL_ERR_INEXACT: the reverse pass did not end on w0 and v0 = 0 bit for bit."""


class FileError(Error, OSError):
    """REVL_ERR_IO: a file could not be read or written, or is malformed."""


class Unavailable(NotImplementedError):
    """The linked librevl does not export a function this wrapper needs (an older or partial
    build).  ``.symbol`` names it."""

    def __init__(self, symbol, library):
        self.symbol = symbol
        self.library = library
        super().__init__(f"{symbol} is not exported by {library} (an older or partial build of "
                         f"librevl?)")


_BY_STATUS = {
    ERR_INVALID: InvalidError,
    ERR_NOMEM: NoMemoryError,
    ERR_CALLBACK: CallbackError,
    ERR_RANGE: RangeError,
    ERR_STATE: StateError,
    ERR_INEXACT: InexactError,
    ERR_IO: FileError,
}


def error_for(status, message, function=None):
    """The exception instance for a C status code."""
    return _BY_STATUS.get(int(status), Error)(status, message, function)
