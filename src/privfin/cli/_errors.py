"""Error handling shared by the CLI's command groups: a user mistake or an unreadable file ends
in one line on stderr and exit code 2 (never a traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

__all__ = ["fail", "one_line_errors"]


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """User mistakes (:class:`~privfin.errors.PrivfinError`) and unreadable files end in one
    line and exit code 2."""
    from privfin.errors import PrivfinError

    try:
        yield
    except PrivfinError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
