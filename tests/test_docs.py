"""The documentation matches the code.

Checked in README.md, docs/*.md and the docstring of ``privfin`` (src/privfin/__init__.py);
module paths, file paths and Markdown names also in the protocols' SPEC.md files and the
sub-packages' docstrings:

- every ``privfin.x.y`` named is a module or package of src/privfin, or an attribute of one
  (``privfin.ml.trees.TreeParams``); a name followed by "logger" is a logger the code creates;
  a package not written yet may be named only next to the word "planned" (or "later");
- every repository path named (``src/...``, ``docs/...``, ``benchmarks/...``, ``tests/...``),
  every relative Markdown link and every bare ``NAME.md`` exists (a glob matches something; a
  path the tools write, listed in .gitignore, is allowed); every document is in docs/index.md;
- every ``privfin <command> <subcommand>`` (in code spans and shell blocks, ``a|b`` alternatives
  included) is a command of the CLI, and every ``--option`` given to a command is one of its
  options; every HTTP route named (``POST /v1/restart/{job}``, ``/v1/jobs…``) is served; every
  node.yaml key (``quotas.min_chunk``, YAML examples) is a config field; every ``PRIVFIN_*``
  variable is read somewhere;
- every ```python block compiles, names only what exists in ``from privfin... import ...``, and
  calls privfin's functions, classes and their methods with parameters they accept; blocks run
  (in a temporary directory) unless the line before them is ``<!-- no-test: reason -->``;
  ``>>>`` examples run as doctests.

The ``test_the_*_catch*_drift`` tests show the checks catch the drift they are for.
"""

from __future__ import annotations

import ast
import doctest
import fnmatch
import importlib
import inspect
import re
import shlex
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)[^\n]*$")
_NO_TEST = re.compile(r"^\s*<!--\s*no-test\b.*-->\s*$")
_SHELL_LANGS = {"", "sh", "bash", "console", "shell", "shell-session"}
_PLANNED = re.compile(r"\b(planned|later|not yet)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Block:
    """A paragraph, list item, table row or fenced code block of a document."""

    file: str
    line: int  # 1-based line of the block's first line
    text: str
    lang: str | None = None  # fenced code: the info string's language ("" when none)
    no_test: bool = False  # fenced code preceded by <!-- no-test ... -->

    def where(self, offset: int = 0) -> str:
        return f"{self.file}:{self.line + self.text.count(chr(10), 0, offset)}"


def _package_docstring() -> str:
    tree = ast.parse((SRC / "privfin" / "__init__.py").read_text(encoding="utf-8"))
    return ast.get_docstring(tree) or ""


def _split(name: str, text: str, first_line: int = 1) -> list[Block]:
    """Blocks of a Markdown text: fences whole; otherwise split at blank lines, list items and
    table rows."""
    blocks: list[Block] = []
    lines = text.split("\n")
    cur: list[str] = []
    cur_start = 0
    i = 0

    def flush() -> None:
        nonlocal cur
        if any(s.strip() for s in cur):
            blocks.append(Block(name, first_line + cur_start, "\n".join(cur)))
        cur = []

    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if m:
            flush()
            indent, fence, lang = m.group(1), m.group(2), m.group(3)
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            body = [s[len(indent) :] if s.startswith(indent) else s for s in lines[i + 1 : j]]
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            no_test = k >= 0 and bool(_NO_TEST.match(lines[k]))
            blocks.append(Block(name, first_line + i + 1, "\n".join(body), lang, no_test))
            i = j + 1
            cur_start = i
            continue
        if not line.strip() or line.lstrip().startswith("|"):
            flush()
            if line.strip():
                blocks.append(Block(name, first_line + i, line))
            cur_start = i + 1
        elif re.match(r"^\s*(?:[-*+]|\d+\.)\s", line):
            flush()
            cur_start = i
            cur.append(line)
        else:
            if not cur:
                cur_start = i
            cur.append(line)
        i += 1
    flush()
    return blocks


def _all_blocks() -> list[Block]:
    out: list[Block] = []
    for path in DOC_FILES:
        out += _split(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
    out += _split("src/privfin/__init__.py (docstring)", _package_docstring())
    return out


def _source_blocks() -> list[Block]:
    """The protocols' SPEC.md files and the docstrings of the sub-packages (module paths and
    file paths only: their examples and commands are the modules' own business)."""
    out: list[Block] = []
    for path in sorted((SRC / "privfin").rglob("*.md")):
        out += _split(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
    for path in sorted((SRC / "privfin").rglob("__init__.py")):
        if path.parent == SRC / "privfin":
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        out += _split(f"{path.relative_to(ROOT)} (docstring)", doc)
    return out


BLOCKS = _all_blocks()
SOURCE_BLOCKS = _source_blocks()


# ------------------------------------------------------------------------------ module paths

_MODULE = re.compile(r"""(?<![\w.\-/"'])privfin(?:\.[A-Za-z_]\w*)+""")


def _module_file(parts: list[str]) -> bool:
    base = SRC.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _resolve(name: str) -> str | None:
    """None if ``name`` is a module of src/privfin or an attribute of one, else the problem."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if _module_file(parts[:i]):
            break
    else:  # pragma: no cover - "privfin" itself always exists
        return "no such package"
    if i == len(parts):
        return None
    module = ".".join(parts[:i])
    obj: Any = importlib.import_module(module)
    for j, attr in enumerate(parts[i:]):
        if not hasattr(obj, attr):
            have = ".".join(parts[: i + j])
            return f"neither a module nor an attribute ({have} has no {attr!r})"
        obj = getattr(obj, attr)
    return None


def _loggers() -> set[str]:
    found: set[str] = set()
    for path in (SRC / "privfin").rglob("*.py"):
        found.update(re.findall(r"getLogger\(\s*[\"']([\w.]+)[\"']", path.read_text("utf-8")))
    return found


def _module_mentions() -> Iterator[tuple[Block, int, str]]:
    for block in BLOCKS + SOURCE_BLOCKS:
        for m in _MODULE.finditer(block.text):
            yield block, m.start(), m.group()


def test_module_paths_named_in_docs_exist() -> None:
    loggers: set[str] | None = None
    problems: list[str] = []
    seen = 0
    for block, pos, name in _module_mentions():
        seen += 1
        after = block.text[pos + len(name) : pos + len(name) + 12].lstrip("`")
        if after.startswith(" logger"):
            loggers = _loggers() if loggers is None else loggers
            if name not in loggers:
                problems.append(f"{block.where(pos)}: no logger {name!r} in src/privfin")
            continue
        problem = _resolve(name)
        if problem is None:
            continue
        if _PLANNED.search(block.text[max(0, pos - 160) : pos + len(name) + 40]):
            continue  # a package named as planned (the word just before or after it)
        problems.append(f"{block.where(pos)}: {name}: {problem}")
    assert seen > 20, "the scan found no module paths: the pattern is broken"
    assert not problems, "module paths in the docs that do not exist:\n" + "\n".join(problems)


# -------------------------------------------------------------------------------- file paths

_PATH = re.compile(r"(?<![\w./-])((?:src|docs|benchmarks|tests)/[\w./*<>-]*[\w/*])")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _ignored(rel: str) -> bool:
    patterns = [
        s.strip()
        for s in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
        if s.strip() and not s.startswith("#")
    ]
    parts = rel.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]  # inside an ignored dir
    return any(fnmatch.fnmatch(pre, p.strip("/")) for pre in prefixes for p in patterns)


def _path_exists(rel: str) -> bool:
    if any(c in rel for c in "*?["):
        return any(ROOT.glob(rel))
    return (ROOT / rel).exists() or _ignored(rel)


def test_file_paths_and_links_in_docs_exist() -> None:
    problems: list[str] = []
    seen = 0
    for block in BLOCKS + SOURCE_BLOCKS:
        for m in _PATH.finditer(block.text):
            rel = m.group(1)
            if "<" in rel or ">" in rel:  # a placeholder: src/privfin/<package>/...
                continue
            seen += 1
            if not _path_exists(rel):
                problems.append(f"{block.where(m.start())}: {rel} does not exist")
        if block.lang is not None or block.file.startswith("src/"):
            continue
        for m in _LINK.finditer(block.text):
            target = m.group(1).split("#", 1)[0]
            if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):  # anchor or URL
                continue
            seen += 1
            doc_dir = (ROOT / block.file).parent
            if not (doc_dir / target).exists():
                problems.append(f"{block.where(m.start())}: link {target} does not exist")
    assert seen > 20, "the scan found no paths: the pattern is broken"
    assert not problems, "paths in the docs that do not exist:\n" + "\n".join(problems)


_MD_NAME = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")


def test_markdown_files_named_in_docs_exist() -> None:
    """A bare ``NAME.md`` (DESIGN.md, SPEC.md, deployment.md) is a file of the repository."""
    names = {p.name for p in ROOT.glob("*.md")}
    for top in ("docs", "src", "tests", "benchmarks"):
        names |= {p.name for p in (ROOT / top).rglob("*.md") if ".venvs" not in p.parts}
    problems = [
        f"{block.where(m.start())}: no file {m.group(1)} in the repository"
        for block in BLOCKS + SOURCE_BLOCKS
        for m in _MD_NAME.finditer(block.text)
        if m.group(1) not in names
    ]
    assert not problems, "Markdown files named in the docs that do not exist:\n" + "\n".join(
        problems
    )


# ---------------------------------------------------------------------------------- commands

_SEPARATORS = {"&&", "||", ";", "|", "/", "#", ">", ">>", "2>", "<"}


def _cli() -> Any:
    import typer.main

    from privfin.cli.main import app

    return typer.main.get_command(app)


def _options(cmd: Any) -> set[str]:
    opts = {"--help"}
    for p in cmd.params:
        opts.update(o for o in (*p.opts, *p.secondary_opts) if o.startswith("-"))
    return opts


def _command_lines(block: Block) -> Iterator[tuple[int, str]]:
    """(offset, text) of the shell text of a block: its code spans, or its lines when it is
    a shell code block (continuation lines joined)."""
    if block.lang is None:
        for m in re.finditer(r"`([^`]+)`", block.text):
            yield m.start(), re.sub(r"\s*\\?\|\s*", "|", re.sub(r"\s+", " ", m.group(1)))
    elif block.lang in _SHELL_LANGS:
        offset = 0
        pending = ""
        start = 0
        for line in block.text.split("\n"):
            if not pending:
                start = offset
            offset += len(line) + 1
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            yield start, pending + line
            pending = ""


def _tokens(text: str) -> list[str]:
    try:
        toks = shlex.split(text, comments=False, posix=True)
    except ValueError:
        toks = text.split()
    return toks


def _invocations(text: str) -> Iterator[list[str]]:
    """Token lists following ``privfin`` at a command position of a shell text."""
    toks = _tokens(text.removeprefix("$ ").strip())
    for i, tok in enumerate(toks):
        if tok != "privfin" and not tok.endswith("/bin/privfin"):
            continue
        if i == 0 or toks[i - 1] in _SEPARATORS or toks[i - 1] in {"$", "(", "$("}:
            rest = []
            for t in toks[i + 1 :]:
                if t in _SEPARATORS or t.startswith("#") or t == "privfin":
                    break
                rest.append(t)
            yield rest


def _check_invocation(cmd: Any, args: list[str], path: str) -> list[str]:
    subs = getattr(cmd, "commands", None)
    if not args:
        return []
    head, rest = args[0], args[1:]
    if head.startswith("[-"):  # an optional option in a usage line: [--out FILE]
        head = head[1:]
    if head.startswith("-"):
        opt = head.split("=", 1)[0].rstrip("]")
        ok = opt in _options(cmd)
        problem = [] if ok else [f"`{path}` has no option {opt}"]
        if subs is not None:  # an option of a group ends what the docs can name
            return problem
        return problem + _check_invocation(cmd, rest, path)
    if subs is None:
        return _check_invocation(cmd, rest, path)  # an argument of the command
    problems: list[str] = []
    for alt in filter(None, head.split("|")):
        if alt not in subs:
            problems.append(f"`{path}` has no command {alt!r} (it has: {', '.join(sorted(subs))})")
        else:
            problems += _check_invocation(subs[alt], rest, f"{path} {alt}")
    return problems


def test_commands_named_in_docs_exist() -> None:
    root = _cli()
    problems: list[str] = []
    seen = 0
    for block in BLOCKS:
        for offset, text in _command_lines(block):
            for args in _invocations(text):
                seen += 1
                problems += [
                    f"{block.where(offset)}: {p}" for p in _check_invocation(root, args, "privfin")
                ]
    assert seen > 30, "the scan found no privfin commands: the pattern is broken"
    assert not problems, "commands in the docs that the CLI does not have:\n" + "\n".join(problems)


def test_the_command_check_catches_drift() -> None:
    root = _cli()
    assert _check_invocation(root, ["job", "status", "J", "--watch"], "privfin") == []
    assert _check_invocation(root, ["data", "synth|register|list|show"], "privfin") == []
    assert _check_invocation(root, ["job", "frobnicate"], "privfin")
    assert _check_invocation(root, ["job", "status", "J", "--no-such-flag"], "privfin")
    assert _check_invocation(root, ["data", "list|drop"], "privfin")
    assert _check_invocation(root, ["audit", "seal", "[--out", "F]"], "privfin") == []
    assert _check_invocation(root, ["audit", "seal", "[--outt]"], "privfin")
    assert list(_invocations("createdb -O privfin privfin_bank")) == []
    assert list(_invocations("make && privfin job submit x.yaml --config c")) == [
        ["job", "submit", "x.yaml", "--config", "c"]
    ]


# ------------------------------------------------------------------------------ HTTP routes

_ROUTE_DECORATOR = re.compile(r"""@\w+\.(get|post|put|delete|patch)\(\s*["'](/[^"']*)["']""")
_DOC_ROUTE = re.compile(r"`(?:(GET|POST|PUT|DELETE|PATCH) )?(/v\d+/[^`\s]*|/health)`")


def _routes() -> set[tuple[str, tuple[str, ...]]]:
    """(method, path segments) of every route the node's FastAPI apps declare."""
    found = set()
    for path in (SRC / "privfin").rglob("*.py"):
        for method, route in _ROUTE_DECORATOR.findall(path.read_text(encoding="utf-8")):
            found.add((method.upper(), tuple(route.strip("/").split("/"))))
    return found


def _route_matches(doc: tuple[str, ...], route: tuple[str, ...], prefix: bool) -> bool:
    for i, seg in enumerate(doc):
        if seg in {"...", "…"}:
            return len(route) > i
        if i >= len(route):
            return False
        if not (seg == route[i] or (seg.startswith("{") and route[i].startswith("{"))):
            return False
    return prefix or len(route) == len(doc)


def test_http_routes_named_in_docs_exist() -> None:
    routes = _routes()
    assert len(routes) > 10, "no routes found: the decorator pattern is broken"
    problems: list[str] = []
    seen = 0
    for block in BLOCKS:
        for m in _DOC_ROUTE.finditer(block.text):
            seen += 1
            method, path = m.group(1), m.group(2).split("?", 1)[0]
            prefix = path.endswith(("…", "..."))
            segs = tuple(path.rstrip(".…").strip("/").split("/")) if prefix else None
            doc = segs if segs is not None else tuple(path.strip("/").split("/"))
            doc = tuple(s for s in doc if s)
            if not any(
                (method is None or method == r_method) and _route_matches(doc, r_path, prefix)
                for r_method, r_path in routes
            ):
                problems.append(f"{block.where(m.start())}: no route {m.group(0)}")
    assert seen > 5, "the scan found no routes in the docs: the pattern is broken"
    assert not problems, "HTTP routes in the docs that no app serves:\n" + "\n".join(problems)


def test_the_route_check_catches_drift() -> None:
    route = ("v1", "jobs", "{job}", "cancel")
    assert _route_matches(("v1", "jobs", "{job}", "cancel"), route, False)
    assert _route_matches(("v1", "jobs"), route, True)
    assert _route_matches(("v1", "jobs", "..."), route, False)
    assert not _route_matches(("v1", "jobs", "{job}", "stop"), route, False)
    assert not _route_matches(("v1", "jobs"), route, False)
    assert not _route_matches(("v1", "job"), route, True)


def test_environment_variables_named_in_docs_are_read() -> None:
    """Every ``PRIVFIN_*`` variable the docs name is read by the package (or by the tests and
    CI scripts, for the test switches)."""
    code = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for top in ("src", "tests", ".ci")
        for p in (ROOT / top).rglob("*")
        if p.is_file() and p.suffix in {".py", ""} and p.name != "test_docs.py"
    )
    problems = [
        f"{block.where(m.start())}: nothing reads {m.group()}"
        for block in BLOCKS
        for m in re.finditer(r"\bPRIVFIN_[A-Z0-9_]*[A-Z0-9]", block.text)
        if m.group() not in code
    ]
    assert not problems, "environment variables in the docs that nothing reads:\n" + (
        "\n".join(problems)
    )


# ------------------------------------------------------------------------------ node.yaml keys

_CONFIG_SPAN = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)(?::[^`]*)?`")


def _model_problems(model: Any, data: Any, where: str) -> list[str]:
    """Keys of ``data`` (a node.yaml fragment) that ``model`` (pydantic) has no field for."""
    import pydantic

    if not isinstance(data, dict):
        return []
    problems: list[str] = []
    for key, value in data.items():
        field = model.model_fields.get(key)
        if field is None:
            problems.append(f"{where}: {model.__name__} has no key {key!r}")
            continue
        ann = field.annotation
        sub = [a for a in (ann, *typing.get_args(ann)) if inspect.isclass(a)]
        models = [a for a in sub if issubclass(a, pydantic.BaseModel)]
        if not models:
            continue
        if typing.get_origin(ann) is dict and isinstance(value, dict):
            for k, v in value.items():
                problems += _model_problems(models[0], v, f"{where} {key}.{k}")
        elif typing.get_origin(ann) is list and isinstance(value, list):
            for v in value:
                problems += _model_problems(models[0], v, f"{where} {key}[]")
        else:
            problems += _model_problems(models[0], value, f"{where} {key}")
    return problems


def test_node_config_keys_named_in_docs_exist() -> None:
    """``quotas.min_chunk`` in a code span and every key of a node.yaml example (a YAML block
    without ``job:``) is a field of the node's configuration."""
    import yaml

    from privfin.node.config import NodeConfig

    problems: list[str] = []
    seen = 0
    for block in BLOCKS:
        if block.lang == "yaml":
            data = yaml.safe_load(block.text)
            if isinstance(data, dict) and "job" not in data and "steps" not in data:
                seen += 1
                problems += _model_problems(NodeConfig, data, block.where())
            continue
        if block.lang is not None:
            continue
        for m in _CONFIG_SPAN.finditer(block.text):
            head, *_ = m.group(1).split(".")
            if head not in NodeConfig.model_fields:
                continue
            seen += 1
            data: Any = None
            for part in reversed(m.group(1).split(".")):
                data = {part: data}
            problems += _model_problems(NodeConfig, data, block.where(m.start()))
    assert seen > 3, "the scan found no node.yaml keys: the pattern is broken"
    assert not problems, "node.yaml keys in the docs that the config does not have:\n" + (
        "\n".join(problems)
    )


def test_the_config_check_catches_drift() -> None:
    from privfin.node.config import NodeConfig

    assert _model_problems(NodeConfig, {"quotas": {"min_chunk": 1}}, "x") == []
    assert _model_problems(NodeConfig, {"peers": {"a": {"url": "u", "cert": "c"}}}, "x") == []
    assert _model_problems(NodeConfig, {"quotas": {"min_chunks": 1}}, "x")
    assert _model_problems(NodeConfig, {"peers": {"a": {"urls": "u"}}}, "x")
    assert _model_problems(NodeConfig, {"auto_approve": [{"partners": "a"}]}, "x")
    assert _model_problems(NodeConfig, {"no_such_key": 1}, "x")


# ---------------------------------------------------------------------------- python examples

PYTHON_BLOCKS = [b for b in BLOCKS if b.lang in {"python", "py", "pycon"}]


@dataclass(frozen=True)
class _Instance:
    """An object of a privfin class in an example (from a constructor or a method returning
    its class)."""

    cls: type


@dataclass(frozen=True)
class _Missing:
    owner: str
    attr: str


def _bound_names(tree: ast.Module) -> dict[str, Any]:
    """What the names of an example refer to: ``from privfin... import`` names, and variables
    assigned an instance of a privfin class."""
    names: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("privfin"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                names[alias.asname or alias.name] = getattr(module, alias.name, None)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("privfin") and alias.asname:
                    names[alias.asname] = importlib.import_module(alias.name)
                elif alias.name.startswith("privfin"):
                    names["privfin"] = importlib.import_module("privfin")
    for node in tree.body:  # in order: a later line may use an earlier variable
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            value = _value(node.value, names)
            if isinstance(value, _Instance):
                names[node.targets[0].id] = value
    return names


def _returns_instance(func: Any, owner: _Instance | None) -> _Instance | None:
    """The instance a call of ``func`` returns when its return annotation is a privfin class."""
    if inspect.isclass(func):
        return _Instance(func) if func.__module__.startswith("privfin") else None
    try:
        hint = typing.get_type_hints(func).get("return")
    except Exception:  # unresolvable annotations: unknown
        return None
    if hint is typing.Self and owner is not None:
        return owner
    if inspect.isclass(hint) and hint.__module__.startswith("privfin"):
        return _Instance(hint)
    return None


def _value(expr: ast.expr, names: dict[str, Any]) -> Any:
    """The privfin object an expression denotes, an _Instance, a _Missing attribute, or None
    when the example's expression is not about privfin."""
    if isinstance(expr, ast.Name):
        return names.get(expr.id)
    if isinstance(expr, ast.Call):
        owner = _value(expr.func.value, names) if isinstance(expr.func, ast.Attribute) else None
        func = _value(expr.func, names)
        if func is None or isinstance(func, _Missing):
            return None
        return _returns_instance(func, owner if isinstance(owner, _Instance) else None)
    if isinstance(expr, ast.Attribute):
        owner = _value(expr.value, names)
        if owner is None or isinstance(owner, _Missing):
            return None
        cls = owner.cls if isinstance(owner, _Instance) else owner
        if not hasattr(cls, expr.attr):
            name = getattr(cls, "__name__", type(cls).__name__)
            return _Missing(name, expr.attr)
        return getattr(cls, expr.attr)
    return None


def _static_problems(block: Block) -> list[str]:
    code = block.text
    if block.lang == "pycon" or code.lstrip().startswith(">>>"):
        code = "".join(
            e.source for e in doctest.DocTestParser().get_examples(block.text, block.file)
        )
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"{block.file}:{block.line + (exc.lineno or 1) - 1}: does not compile: {exc.msg}"]
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("privfin"):
            where = f"{block.file}:{block.line + node.lineno - 1}"
            try:
                module = importlib.import_module(node.module or "")
            except ImportError as exc:
                problems.append(f"{where}: {exc}")
                continue
            problems += [
                f"{where}: {node.module} has no {a.name!r}"
                for a in node.names
                if not hasattr(module, a.name)
            ]
    if problems:
        return problems
    names = _bound_names(tree)
    for node in ast.walk(tree):
        where = f"{block.file}:{block.line + getattr(node, 'lineno', 1) - 1}"
        if isinstance(node, ast.Attribute):
            owner = _value(node.value, names)
            # an instance's data attributes may be set in __init__: only its methods (below)
            if not isinstance(owner, _Instance) and isinstance(_value(node, names), _Missing):
                problems.append(f"{where}: {ast.unparse(node)}: no attribute {node.attr!r}")
        if not isinstance(node, ast.Call):
            continue
        target = _value(node.func, names)
        if isinstance(target, _Missing):
            if isinstance(node.func, ast.Attribute) and isinstance(
                _value(node.func.value, names), _Instance
            ):
                problems.append(f"{where}: {ast.unparse(node.func)}: no method {target.attr!r}")
            continue
        if target is None or not callable(target):
            continue
        try:
            sig = inspect.signature(target)
        except (TypeError, ValueError):  # builtins without a signature
            continue
        if isinstance(node.func, ast.Attribute):
            owner = _value(node.func.value, names)
            if isinstance(owner, _Instance) and not isinstance(
                inspect.getattr_static(owner.cls, node.func.attr, None),
                staticmethod | classmethod,
            ):
                sig = sig.replace(parameters=list(sig.parameters.values())[1:])  # self
        if any(isinstance(a, ast.Starred) for a in node.args) or any(
            k.arg is None for k in node.keywords
        ):
            continue
        try:
            sig.bind(*node.args, **{k.arg: k.value for k in node.keywords if k.arg})
        except TypeError as exc:
            problems.append(f"{where}: {ast.unparse(node.func)}(...): {exc}")
    return problems


def test_python_examples_name_only_what_exists() -> None:
    assert PYTHON_BLOCKS, "no ```python block found: the scan is broken"
    problems = [p for b in PYTHON_BLOCKS for p in _static_problems(b)]
    assert not problems, "python examples in the docs that do not match the code:\n" + "\n".join(
        problems
    )


def test_the_example_check_catches_drift() -> None:
    good = Block(
        "x.md",
        1,
        "from privfin.ml.metrics import gain_table\nt = gain_table([0, 1], [0.1, 0.9], 2)\n",
        "python",
    )
    assert _static_problems(good) == []
    for bad in (
        "from privfin.ml.metrics import no_such_thing\n",
        "from privfin.ml.metrics import gain_table\ngain_table([0, 1], [0.1, 0.9], buckets=2)\n",
        "from privfin.ml.metrics import GainTable\nGainTable.no_such_method\n",
        "from privfin.jobs.sdk import Pipeline\nPipeline('j', purpose='x')\n",
        "from privfin.jobs.sdk import Pipeline\np = Pipeline('j', purpose='x', results=[])\n"
        "p.no_such()\n",
        "from privfin.jobs.sdk import Pipeline\np = Pipeline('j', purpose='x', results=[])\n"
        "p.party()\n",
        "from privfin.jobs.sdk import Pipeline\n"
        "Pipeline('j', purpose='x', results=[]).party('a').step('s', 'psi', role={})\n",
        "x = (\n",
    ):
        assert _static_problems(Block("x.md", 1, bad, "python")), bad


@pytest.mark.parametrize(
    "block",
    [b for b in PYTHON_BLOCKS if not b.no_test],
    ids=lambda b: f"{b.file}:{b.line}",
)
def test_python_examples_run(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    _run(block)


def _run(block: Block) -> None:
    """Run a ```python block (``>>>`` examples as a doctest; other code as a script)."""
    if block.lang == "pycon" or block.text.lstrip().startswith(">>>"):
        test = doctest.DocTestParser().get_doctest(
            block.text, {"__name__": "__docs__"}, block.file, block.file, block.line - 1
        )
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        runner.run(test)
        assert runner.failures == 0, f"doctest failed in {block.file}:{block.line}"
        return
    tree = ast.parse(block.text)
    ast.increment_lineno(tree, block.line - 1)  # tracebacks name the document's lines
    exec(compile(tree, block.file, "exec"), {"__name__": "__docs__"})


def test_doctest_examples_are_checked() -> None:
    ok = (
        ">>> from privfin.ml.metrics import roc_auc\n>>> roc_auc([0, 1, 1], [0.2, 0.9, 0.1])\n0.5\n"
    )
    _run(Block("x.md", 1, ok, "python"))
    with pytest.raises(AssertionError, match="doctest failed"):
        _run(Block("x.md", 1, ok.replace("0.5", "0.75"), "python"))
    with pytest.raises(NameError):
        _run(Block("x.md", 1, "print(undefined_name)\n", "python"))


def test_marked_not_runnable_examples_stay_few() -> None:
    skipped = [f"{b.file}:{b.line}" for b in PYTHON_BLOCKS if b.no_test]
    assert len(skipped) <= 3, f"make examples self-contained instead of marking them: {skipped}"


def test_the_path_checks_catch_drift() -> None:
    assert _resolve("privfin.ml.trees.TreeParams") is None
    assert _resolve("privfin.ml.report") is None
    assert _resolve("privfin.no_such_package") is not None
    assert _resolve("privfin.ml.trees.NoSuchThing") is not None
    assert _path_exists("src/privfin/fl/vertical/*/SPEC.md")
    assert _path_exists("benchmarks/results/")  # written by the benchmarks, in .gitignore
    assert not _path_exists("docs/no-such-file.md")
    assert not _path_exists("src/privfin/*/NO_SUCH.md")
    old = _split("x", "Sub-packages follow the layers of DESIGN.md (imports only go down).")
    assert [m.group(1) for b in old for m in _MD_NAME.finditer(b.text)] == ["DESIGN.md"]
    assert not (ROOT / "DESIGN.md").exists()
    planned = _split("x", "5. Protocols: `privfin.psi`; later `privfin.dp`,\n   `privfin.tee`.")
    assert len(planned) == 1 and _PLANNED.search(planned[0].text)


def test_every_document_is_in_the_index() -> None:
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)\)", index))
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if p.name != "index.md"]
    assert sorted(set(missing) - linked) == []
