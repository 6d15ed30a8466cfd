"""Errors of the simulator itself (bad config, bad faults file, port in use): one line, no traceback."""


class SimConfigError(Exception):
    """Bad input to the simulator (catalog, faults, CLI options, environment)."""


class ApiError(Exception):
    """A vendor-shaped API error; each API front end renders it in its vendor's error shape."""

    def __init__(self, status: int, message: str, *, code: str | None = None, title: str | None = None,
                 errors: list[str] | None = None, headers: dict[str, str] | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.title = title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}
