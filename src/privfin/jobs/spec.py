"""The job spec: who takes part, with which data, and a DAG of steps (YAML or the Python SDK).

A pipeline job names its parties, each party's datasets by their **registered** names (under a
local alias the steps refer to), the result parties, the purpose and the retention, and its
steps. A step runs one component with roles for some of the parties; its inputs reference a
party's dataset (``datasets.<alias>``), an imported model (``models.<alias>``) or an output of
an earlier step (``<step>.<output>``, e.g. ``psi.aligned``, ``train.model``). References are
party-local: each party binds its own dataset, its own slice of a model and its own output of
the earlier step; nothing moves between parties except the components' messages.

``load_spec`` reads a YAML/JSON file and reports a bad spec as one :class:`SpecError` whose
problems each name the path in the file (``steps.train.inputs.table``) and its line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
)

from privfin.errors import ConfigError

__all__ = [
    "DatasetUse",
    "PartySpec",
    "PipelineSpec",
    "SpecError",
    "SpecProblem",
    "StepSpec",
    "load_spec",
    "parse_spec_data",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,47}$")
_JOB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_REF = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_-]{0,47})\.([A-Za-z0-9][A-Za-z0-9_-]{0,47})$")
#: Step names a reference cannot use (they name the other kinds of reference).
RESERVED = frozenset({"datasets", "models", "job", "data"})


def _name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValueError(f"{kind} {value!r} must be 1-48 of letters, digits, _ and - ")
    return value


class SpecProblem(BaseModel):
    """One thing wrong with a spec: where (dotted path, line if known) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path} (line {self.line})" if self.line else self.path
        return f"{where}: {self.message}"


class SpecError(ConfigError):
    """A job spec that does not validate; ``problems`` lists every finding."""

    def __init__(self, problems: list[SpecProblem], source: str = "job spec") -> None:
        self.problems = problems
        self.source = source
        first = str(problems[0]) if problems else "invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{source}: {first}{more}")

    def report(self) -> str:
        return "\n".join(f"{self.source}: {p}" for p in self.problems)


class DatasetUse(BaseModel):
    """A registered dataset and the fields the job may use (``None``: every field);
    ``legal_basis``: the legal bases the job accepts for it (its holder's node refuses the job
    unless the dataset's usage policy records one of them; ``None``: no demand)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    fields: list[str] | None = None
    legal_basis: list[str] | None = None

    @field_validator("legal_basis")
    @classmethod
    def _bases(cls, v: list[str] | None) -> list[str] | None:
        from privfin.data.registry import LEGAL_BASES

        if v is not None:
            if not v:
                raise ValueError("legal_basis needs at least one accepted basis")
            unknown = [b for b in v if b not in LEGAL_BASES]
            if unknown:
                raise ValueError(f"unknown legal basis {unknown}; use {', '.join(LEGAL_BASES)}")
        return v

    @model_serializer(mode="wrap")
    def _canonical(self, handler: Any) -> Any:
        # a use without a legal-basis demand keeps the canonical form (and digest) it had
        # before the field existed
        out = handler(self)
        if isinstance(out, dict) and out.get("legal_basis") is None:
            out.pop("legal_basis", None)
        return out


class PartySpec(BaseModel):
    """One party's part: its datasets and imported models under aliases the steps use."""

    model_config = ConfigDict(extra="forbid")
    datasets: dict[str, DatasetUse] = {}
    models: dict[str, str] = {}

    @field_validator("datasets", mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: ({"name": d} if isinstance(d, str) else d) for k, d in v.items()}
        return v

    @field_validator("datasets", "models")
    @classmethod
    def _aliases(cls, v: dict[str, Any]) -> dict[str, Any]:
        for alias in v:
            _name("alias", alias)
        return v


class StepSpec(BaseModel):
    """One step: a component, the roles of the parties taking part, parameters, inputs."""

    model_config = ConfigDict(extra="forbid")
    component: str
    roles: dict[str, list[str]]
    params: dict[str, Any] = {}
    #: Per-party parameters merged over ``params`` (local settings such as ``id_column``).
    party_params: dict[str, dict[str, Any]] = {}
    #: Inputs of every party of the step whose role takes them: input name -> reference.
    inputs: dict[str, str] = {}
    #: Per-party inputs, merged over ``inputs``.
    party_inputs: dict[str, dict[str, str]] = {}
    #: Steps that must finish first although no input references them.
    after: list[str] = []
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("roles", mode="before")
    @classmethod
    def _one_role(cls, v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: ([r] if isinstance(r, str) else r) for k, r in v.items()}
        return v

    def parties(self) -> list[str]:
        return list(self.roles)

    def inputs_of(self, party: str) -> dict[str, str]:
        return {**self.inputs, **self.party_inputs.get(party, {})}

    def params_of(self, party: str) -> dict[str, Any]:
        return {**self.params, **self.party_params.get(party, {})}


class PipelineSpec(BaseModel):
    """A multi-step job, as every party's node receives it (the same bytes at every party)."""

    model_config = ConfigDict(extra="forbid")
    version: Literal[1] = 1
    job: str
    purpose: str = Field(min_length=1, max_length=500)
    retention_days: int = Field(default=30, ge=1, le=3650)
    parties: dict[str, PartySpec]
    results: list[str]
    steps: dict[str, StepSpec]
    timeout: float | None = Field(default=None, gt=0)
    #: The party that proposed the job (set by its node when it is submitted there).
    initiator: str | None = None

    @field_validator("job")
    @classmethod
    def _job(cls, v: str) -> str:
        if not _JOB.fullmatch(v) or not v.strip("."):
            raise ValueError("job must be 1-64 of letters, digits, _ . - (starting alnum)")
        return v

    @field_validator("parties")
    @classmethod
    def _parties(cls, v: dict[str, PartySpec]) -> dict[str, PartySpec]:
        if len(v) < 2:
            raise ValueError("a job needs at least two parties")
        for party in v:
            _name("party", party)
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: dict[str, StepSpec]) -> dict[str, StepSpec]:
        if not v:
            raise ValueError("a job needs at least one step")
        for step in v:
            _name("step", step)
            if step in RESERVED:
                raise ValueError(f"{step!r} is reserved and cannot name a step")
        return v

    # -- the DAG
    def dependencies(self, step: str) -> list[str]:
        """The steps ``step`` reads from or must follow (direct dependencies only)."""
        spec = self.steps[step]
        deps = list(spec.after)
        for party in spec.roles:
            for ref in spec.inputs_of(party).values():
                kind, name, _ = parse_ref(ref)
                if kind == "step" and name not in deps:
                    deps.append(name)
        return deps

    def order(self) -> list[str]:
        """The steps in a topological order (ties broken by their order in the spec), or a
        ConfigError naming a cycle or an unknown step."""
        names = list(self.steps)
        deps = {s: self.dependencies(s) for s in names}
        for s, ds in deps.items():
            for d in ds:
                if d not in self.steps:
                    raise ConfigError(f"step {s!r} depends on unknown step {d!r}")
        done: list[str] = []
        state: dict[str, int] = {}

        def visit(s: str, trail: list[str]) -> None:
            if state.get(s) == 2:
                return
            if state.get(s) == 1:
                cycle = " -> ".join([*trail[trail.index(s) :], s])
                raise ConfigError(f"the steps form a cycle: {cycle}")
            state[s] = 1
            for d in deps[s]:
                visit(d, [*trail, s])
            state[s] = 2
            done.append(s)

        for s in names:
            visit(s, [])
        return done

    def downstream(self, step: str) -> set[str]:
        """``step`` and every step that depends on it, directly or not."""
        out = {step}
        changed = True
        while changed:
            changed = False
            for s in self.steps:
                if s not in out and any(d in out for d in self.dependencies(s)):
                    out.add(s)
                    changed = True
        return out

    def steps_of(self, party: str) -> list[str]:
        """The steps ``party`` takes part in, in execution order."""
        return [s for s in self.order() if party in self.steps[s].roles]


def parse_ref(ref: str) -> tuple[str, str, str]:
    """``datasets.train`` -> ("dataset", "train", ""), ``models.m`` -> ("model", "m", ""),
    ``psi.aligned`` -> ("step", "psi", "aligned"); ConfigError for anything else."""
    m = _REF.fullmatch(ref) if isinstance(ref, str) else None
    if m is None:
        raise ConfigError(
            f"reference {ref!r} must be datasets.<alias>, models.<alias> or <step>.<output>"
        )
    head, tail = m.group(1), m.group(2)
    if head == "datasets":
        return "dataset", tail, ""
    if head == "models":
        return "model", tail, ""
    return "step", head, tail


# -- loading with paths and lines
def _lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path of a YAML document to its (1-based) line."""
    import yaml

    out: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return out

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, str(k.value))
                out[key] = k.start_mark.line + 1
                walk(v, key)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                key = (*path, str(i))
                out[key] = v.start_mark.line + 1
                walk(v, key)

    if root is not None:
        walk(root, ())
    return out


def _line(lines: Mapping[tuple[str, ...], int], path: tuple[str, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def parse_spec_data(
    data: Any, *, lines: Mapping[tuple[str, ...], int] | None = None, source: str = "job spec"
) -> PipelineSpec:
    """Validate ``data`` (a parsed YAML/JSON mapping) as a :class:`PipelineSpec`; every
    schema problem becomes a :class:`SpecProblem` with its path (and line, given ``lines``)."""
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise SpecError([SpecProblem(path="(top)", message="the spec must be a mapping")], source)
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(str(x) for x in err["loc"])
            # pydantic's "function-before" / union branches add noise to a path: keep keys
            path = tuple(p for p in loc if not p.startswith("function-"))
            problems.append(
                SpecProblem(
                    path=".".join(path) or "(top)",
                    message=str(err["msg"]).removeprefix("Value error, "),
                    line=_line(lines, path),
                )
            )
        raise SpecError(problems, source) from None


def load_spec(path: str | Path) -> tuple[PipelineSpec, dict[tuple[str, ...], int]]:
    """Read and schema-check a pipeline spec file (YAML or JSON). Returns the spec and the
    line of each key path (for pointing at a problem found later by :func:`validate`)."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read job spec {p}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"{p}: not valid YAML{where}") from None
    lines = _lines(text)
    return parse_spec_data(data, lines=lines, source=str(p)), lines
