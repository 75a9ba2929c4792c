"""Check a whole pipeline before anything runs: components, roles, parameters, every input
reference and the DAG — each problem names its path in the spec file (and line).

:func:`validate` checks what every party can check from the spec alone; a node adds its local
checks (registered datasets, their fields and JR/T 0171 levels, imported models) through
``local`` (see :class:`LocalChecks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from privfin.errors import ConfigError
from privfin.jobs.components import DECLARATIONS
from privfin.jobs.spec import PipelineSpec, SpecError, SpecProblem, parse_ref

__all__ = ["LocalChecks", "check", "validate"]


class LocalChecks(Protocol):
    """What one party checks on its own data (its node implements it)."""

    def dataset(self, name: str, fields: list[str] | None, *, keeps_private: bool) -> None:
        """Raise ConfigError if the dataset may not be used this way."""
        ...

    def model(self, name: str) -> None:
        """Raise ConfigError if no such imported model."""
        ...


def validate(
    spec: PipelineSpec,
    *,
    lines: Mapping[tuple[str, ...], int] | None = None,
    party: str | None = None,
    local: LocalChecks | None = None,
) -> list[SpecProblem]:
    """Every problem of ``spec`` (empty list: valid). With ``party`` and ``local``, also that
    party's local checks of its datasets and models."""
    lines = lines or {}
    problems: list[SpecProblem] = []
    reported: set[tuple[str, str]] = set()  # (a list lookup made validation quadratic)

    def add(path: tuple[str, ...], message: str) -> None:
        line = None
        p = path
        while p:
            if p in lines:
                line = lines[p]
                break
            p = p[:-1]
        if (".".join(path), message) not in reported:  # the same reference for each party
            reported.add((".".join(path), message))
            problems.append(SpecProblem(path=".".join(path), message=message, line=line))

    for r in spec.results:
        if r not in spec.parties:
            add(("results",), f"result party {r!r} is not a party of the job")
    try:
        order = spec.order()
    except ConfigError as exc:
        add(("steps",), str(exc))
        order = list(spec.steps)
    position = {s: i for i, s in enumerate(order)}

    for name, step in spec.steps.items():
        at = ("steps", name)
        decl = DECLARATIONS.get(step.component)
        if decl is None:
            add(
                (*at, "component"),
                f"unknown component {step.component!r}; known: {', '.join(sorted(DECLARATIONS))}",
            )
            continue
        for p, roles in step.roles.items():
            if p not in spec.parties:
                add((*at, "roles", p), f"{p!r} is not a party of the job")
            for r in roles:
                if r not in decl.roles:
                    add((*at, "roles", p), f"{decl.name} has no role {r!r} (roles: {decl.roles})")
        if decl.check_roles is not None:
            why = decl.check_roles(step.roles)
            if why:
                add((*at, "roles"), f"{decl.name} {why}")
        for p in step.party_params:
            if p not in step.roles:
                add((*at, "party_params", p), f"{p!r} takes no part in this step")
        for p in step.party_inputs:
            if p not in step.roles:
                add((*at, "party_inputs", p), f"{p!r} takes no part in this step")
        for a in step.after:
            if a not in spec.steps:
                add((*at, "after"), f"unknown step {a!r}")
        # parameters, per party (party_params merged over params)
        seen: set[str] = set()
        for p in step.roles:
            merged = step.params_of(p)
            key = repr(sorted(merged.items(), key=lambda kv: kv[0]))
            if key in seen:
                continue
            seen.add(key)
            try:
                decl.check_params(merged)
            except ConfigError as exc:
                where = (*at, "party_params", p) if p in step.party_params else (*at, "params")
                add(where, str(exc))
        # inputs, per party and role
        for p, roles in step.roles.items():
            wanted = [port for port in decl.inputs if any(r in port.roles for r in roles)]
            given = step.inputs_of(p)
            src = "party_inputs" if p in step.party_inputs else "inputs"
            for port in wanted:
                if port.required and port.name not in given:
                    add((*at, src), f"{p} ({'/'.join(roles)}) needs input {port.name!r}")
            for input_name, ref in given.items():
                path = (
                    (*at, "party_inputs", p, input_name)
                    if input_name in step.party_inputs.get(p, {})
                    else (*at, "inputs", input_name)
                )
                found = decl.input(input_name)
                if found is None:
                    known = ", ".join(i.name for i in decl.inputs)
                    add(path, f"{decl.name} has no input {input_name!r} (inputs: {known})")
                    continue
                port = found
                if not any(r in port.roles for r in roles):
                    if input_name in step.party_inputs.get(p, {}):
                        add(path, f"{p} ({'/'.join(roles)}) takes no input {input_name!r}")
                    continue
                try:
                    kind, ref_name, output = parse_ref(ref)
                except ConfigError as exc:
                    add(path, str(exc))
                    continue
                party_spec = spec.parties.get(p)
                if kind == "dataset":
                    if port.kind != "table":
                        add(path, f"input {input_name!r} is a {port.kind}, not a dataset")
                    elif party_spec is None or ref_name not in party_spec.datasets:
                        add(path, f"party {p!r} has no dataset alias {ref_name!r}")
                    elif local is not None and p == party:
                        use = party_spec.datasets[ref_name]
                        try:
                            local.dataset(use.name, use.fields, keeps_private=decl.keeps_private)
                        except ConfigError as exc:
                            add(("parties", p, "datasets", ref_name), str(exc))
                elif kind == "model":
                    if port.kind != "model":
                        add(path, f"input {input_name!r} is a {port.kind}, not a model")
                    elif party_spec is None or ref_name not in party_spec.models:
                        add(path, f"party {p!r} has no model alias {ref_name!r}")
                    elif local is not None and p == party:
                        try:
                            local.model(party_spec.models[ref_name])
                        except ConfigError as exc:
                            add(("parties", p, "models", ref_name), str(exc))
                else:
                    src_step = spec.steps.get(ref_name)
                    if src_step is None:
                        add(path, f"unknown step {ref_name!r}")
                        continue
                    if position.get(ref_name, -1) >= position.get(name, 0):
                        add(path, f"step {ref_name!r} does not run before {name!r}")
                    src_decl = DECLARATIONS.get(src_step.component)
                    if src_decl is None:
                        continue
                    out = src_decl.output(output)
                    if out is None:
                        known = ", ".join(o.name for o in src_decl.outputs)
                        add(
                            path,
                            f"{ref_name} ({src_decl.name}) has no output {output!r} "
                            f"(outputs: {known})",
                        )
                        continue
                    if out.kind != port.kind:
                        add(
                            path,
                            f"{ref_name}.{output} is a {out.kind}, input "
                            f"{input_name!r} needs a {port.kind}",
                        )
                    src_roles = src_step.roles.get(p)
                    if src_roles is None:
                        add(path, f"{p!r} takes no part in step {ref_name!r}")
                    elif not any(r in out.roles for r in src_roles):
                        add(path, f"{p} ({'/'.join(src_roles)}) gets no {output!r} from {ref_name}")
    for p in spec.parties:
        if not any(p in s.roles for s in spec.steps.values()):
            add(("parties", p), f"party {p!r} takes part in no step")
    # scores are results: only the result parties may receive them
    for name, step in spec.steps.items():
        decl = DECLARATIONS.get(step.component)
        if decl is None:
            continue
        for p, roles in step.roles.items():
            if p in spec.results:
                continue
            for out in decl.outputs:
                if out.kind == "scores" and any(r in out.roles for r in roles):
                    add(
                        ("steps", name, "roles", p),
                        f"{p} would receive {name}.{out.name} (scores) but is not a result "
                        f"party (results: {', '.join(spec.results)})",
                    )
    return problems


def check(
    spec: PipelineSpec,
    *,
    lines: Mapping[tuple[str, ...], int] | None = None,
    party: str | None = None,
    local: LocalChecks | None = None,
    source: str = "job spec",
) -> None:
    """Raise :class:`SpecError` listing every problem :func:`validate` finds."""
    problems = validate(spec, lines=lines, party=party, local=local)
    if problems:
        raise SpecError(problems, source)
