"""Error tree and exit codes: the one place that maps failures to what CI sees.

Every stage raises a subclass of `GcloudctlError`; the CLI turns it into a message,
a hint and an `ExitCode`. Tracebacks only appear with `--debug`.
Pure module: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # a cloud/host error or a failed change; see the message
    INVALID = 2  # bad input: usage, schema, policy; nothing was sent to the cloud
    CHANGES = 3  # `plan --detailed-exitcode`: the plan holds changes
    REFUSED = 4  # the plan was refused: stale saved plan, quota pre-flight, approval rules
    TIMEOUT = 5  # --timeout elapsed before the work finished
    UNREACHABLE = 6  # cloud or host unreachable, authentication failed
    NOT_FOUND = 7  # the named tenant/request/host does not exist


@dataclass(frozen=True)
class Problem:
    """One finding of validation, located in a source file."""

    path: str  # dotted field path, e.g. spec.networks[1].cidr
    message: str
    file: str = "<input>"
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    rule: str | None = None  # policy rule id when it comes from the rulebook

    def format(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        text = f"{where}: {self.path or '<document>'}: {self.message}"
        if self.rule:
            text += f" [{self.rule}]"
        if self.hint:
            from gcloudctl.i18n import gettext

            text += "\n    " + gettext("hint: {hint}", hint=self.hint)
        return text

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class GcloudctlError(Exception):
    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidInput(GcloudctlError):
    """Input rejected before anything is sent anywhere."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem] | str, *, hint: str | None = None):
        if isinstance(problems, str):
            problems = [Problem(path="", message=problems, hint=hint)]
        self.problems = list(problems)
        super().__init__("\n".join(p.format() for p in self.problems), hint=None)


class Refused(GcloudctlError):
    exit_code = ExitCode.REFUSED


class Forbidden(Refused):
    """The caller is known but may not do this (HTTP 403). Never raised for another agency's
    objects: those are `NotFound`, so nobody can enumerate them."""


class NotOwned(Refused):
    """A cloud object exists under the tenant's name but is not provably the tenant's (another
    agency's project, a project in the wrong domain, missing or mismatched ownership tags)."""


class NotFound(GcloudctlError):
    exit_code = ExitCode.NOT_FOUND


class Unauthenticated(GcloudctlError):
    """No credentials, or credentials the identity provider refused (HTTP 401)."""

    exit_code = ExitCode.UNREACHABLE


class RateLimited(GcloudctlError):
    """Too many calls from one identity (HTTP 429 with Retry-After)."""

    exit_code = ExitCode.REFUSED

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.retry_after = retry_after


class Unreachable(GcloudctlError):
    exit_code = ExitCode.UNREACHABLE


class TimeoutExpired(GcloudctlError):
    exit_code = ExitCode.TIMEOUT


class CloudError(GcloudctlError):
    """An error from the cloud API, classified once at the driver boundary."""

    exit_code = ExitCode.ERROR

    def __init__(self, message: str, *, transient: bool, status: int | None = None,
                 hint: str | None = None, retry_after: float | None = None):
        super().__init__(message, hint=hint)
        self.transient = transient
        self.status = status
        self.retry_after = retry_after


@dataclass
class ProblemList:
    problems: list[Problem] = field(default_factory=list)

    def add(self, *args, **kwargs) -> None:
        self.problems.append(Problem(*args, **kwargs))

    def raise_if_any(self) -> None:
        if self.problems:
            raise InvalidInput(self.problems)
