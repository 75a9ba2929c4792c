"""Escape-by-default HTML building for the dashboard (no template engine).

Every value put into a page goes through :func:`esc` unless it is already :class:`Markup`
(HTML this package built). :func:`h` formats a trusted template with escaped arguments, so a
dataset, job or peer name chosen by anyone cannot add markup or script to a page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

__all__ = ["Markup", "esc", "h", "join"]


class Markup(str):
    """A string of HTML built by this package (inserted as it is)."""

    __slots__ = ()


def esc(value: object) -> object:
    """``value`` made safe for an HTML text node or a quoted attribute: numbers stay numbers
    (so format specs such as ``{:.3f}`` work), Markup stays as it is, all else is escaped."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def h(template: str, *args: object, **kwargs: object) -> Markup:
    """``template`` (trusted HTML with ``{}`` fields) formatted with escaped arguments."""
    return Markup(
        template.format(*(esc(a) for a in args), **{k: esc(v) for k, v in kwargs.items()})
    )


def join(parts: Iterable[object], sep: str = "") -> Markup:
    """The parts (each escaped unless Markup) joined by the trusted ``sep``."""
    return Markup(sep.join(str(esc(p)) for p in parts))
