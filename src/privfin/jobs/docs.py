"""Generate the component reference of ``docs/jobs.md`` from the declarations, so the docs
cannot drift from the code (a test compares them; ``python -m privfin.jobs.docs`` rewrites
the generated part)."""

from __future__ import annotations

import sys
from pathlib import Path

from privfin.jobs.components import DECLARATIONS, KINDS

__all__ = ["BEGIN", "END", "component_reference", "update"]

BEGIN = "<!-- BEGIN GENERATED: component reference (python -m privfin.jobs.docs docs/jobs.md) -->"
END = "<!-- END GENERATED -->"


def component_reference() -> str:
    """Markdown: every pipeline component's roles, inputs, outputs and parameters."""
    lines: list[str] = []
    for name in sorted(DECLARATIONS):
        d = DECLARATIONS[name]
        lines += [f"### `{name}`", "", f"{d.summary}", ""]
        lines.append(f"- technology: {d.technology}")
        lines.append(f"- roles: {', '.join(f'`{r}`' for r in d.roles)}")
        lines.append(
            "- keeps every input field private: "
            + ("yes (C2 fields allowed)" if d.keeps_private else "no (C1 fields only)")
        )
        lines.append(
            "- after a crash: "
            + ("resumes in place from checkpoints" if d.resumable else "restarts as a new attempt")
        )
        if d.reveals:
            lines.append(f"- reveals: {d.reveals}")
        lines += ["", "| | name | kind (file) | roles | |", "|---|---|---|---|---|"]
        for port in d.inputs:
            req = "required" if port.required else "optional"
            lines.append(
                f"| input | `{port.name}` | {port.kind} | {', '.join(port.roles)} | "
                f"{port.doc} ({req}) |"
            )
        for port in d.outputs:
            lines.append(
                f"| output | `{port.name}` | {port.kind} (.{KINDS[port.kind]}) | "
                f"{', '.join(port.roles)} | {port.doc} |"
            )
        params = d.param_docs()
        lines += ["", "Parameters:", ""]
        if params:
            lines += ["| parameter | type | default | |", "|---|---|---|---|"]
            for p in params:
                typ = p.type.replace("|", "\\|")
                default = p.default.replace("|", "\\|")
                lines.append(f"| `{p.name}` | `{typ}` | `{default}` | {p.doc} |")
        else:
            lines.append("(none)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def update(path: str | Path) -> bool:
    """Rewrite the generated part of ``path``; returns whether it changed."""
    p = Path(path)
    text = p.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n\n{component_reference()}\n{END}{tail}"
    if new != text:
        p.write_text(new)
        return True
    return False


if __name__ == "__main__":  # pragma: no cover
    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if update(arg) else 'up to date'}")
