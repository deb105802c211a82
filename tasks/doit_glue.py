"""What ties the steps to doit: the task dict type, `@action`, and a reporter that prints a failure once.

An expected failure (BuildError, a full disk) is printed by `@action` as one `‣ error:` line on stderr,
live; the action returns TaskFailed so doit exits 1. doit's own console reporter would then repeat the
message on stdout and add an empty "<task> <stdout>:" block: `OneLineReporter` leaves both out. A bug
(any other exception) keeps doit's traceback and exit 2.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from doit.exceptions import BaseFail, TaskFailed
from doit.reporter import ConsoleReporter

from tasks.common import DISK_ERRORS, BuildError, disk_error, log

TaskDict = dict[str, Any]

P = ParamSpec("P")
R = TypeVar("R")


class ReportedFailure(TaskFailed):  # type: ignore[misc]  # doit ships no type hints
    """A TaskFailed whose one line `@action` has already printed."""


def action(func: Callable[P, R]) -> Callable[P, R | TaskFailed]:
    """A doit python-action: an expected failure becomes one `‣ error:` line; a bug keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | TaskFailed:
        try:
            return func(*args, **kwargs)
        except BuildError as error:
            failure = error
        except OSError as error:
            if error.errno not in DISK_ERRORS:
                raise
            failure = disk_error(error, Path(error.filename or "build/"))
        log(f"error: {failure.line}")
        return ReportedFailure(failure.line)

    return wrapper


class OneLineReporter(ConsoleReporter):  # type: ignore[misc]
    """doit's console output, minus the repeats of a failure `@action` has already printed."""

    desc = "console output; an expected failure once, as one line"
    failures: list[dict[str, Any]]

    def add_failure(self, task: Any, fail: BaseFail) -> None:
        if isinstance(fail, ReportedFailure):
            self.failures.append({"task": task, "exception": fail})
            return
        super().add_failure(task, fail)

    def complete_run(self) -> None:
        reported = [result for result in self.failures if isinstance(result["exception"], ReportedFailure)]
        self.failures = [result for result in self.failures if result not in reported]
        for result in reported:  # what the task printed on stdout, if anything, helps after a failure
            task = result["task"]
            out = "".join(a.out for a in task.actions if getattr(a, "out", None))
            if task.executed and out.strip():
                self.write(f"{task.name} <stdout>:\n{out}\n")
        super().complete_run()
