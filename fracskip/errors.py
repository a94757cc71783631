"""The one exception type of fracskip: its message always says what to do."""


class FracskipError(Exception):
    """A user-facing error. The CLI prints the message and exits non-zero."""


class ToolMissingError(FracskipError):
    """A required external tool (Vivado, Vitis, a board) is not available here."""
