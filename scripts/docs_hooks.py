"""Reference pages generated from their one source when the docs are built (an mkdocs hook).

A page asks for a block with a line ``<!-- generated: NAME -->``:

- ``settings``: every field of ``Settings`` and ``ApiSettings``: env name, type, default and the
  field's ``description=``. A field without a description fails the build (``UndocumentedSetting``),
  so no setting can be added undocumented, and no hand-written table can drift from the code.
- ``env-other``: the variables ``.env.example`` documents that are not settings fields (read by the
  DAG files, the scripts and compose), from that file's own comments.
- ``cli``: ``python -m tender_pipeline --help`` for the command and each subcommand.
- ``api-operations``: the operations of the search API's OpenAPI document, which is also written
  into the site as ``reference/openapi.json``.

Tests import this module (tests/test_docs.py, tests/test_compose.py) to check the same things
without building the site.
"""

from __future__ import annotations

import io
import json
import os
import re
import sys
import types
from contextlib import redirect_stdout, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "plugins"):  # what PYTHONPATH=plugins:. gives the tests and the CLI
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)
ENV_LINE = re.compile(r"^#?\s*([A-Z_][A-Z0-9_]*)=(.*)$")

# The table each field goes in: a field named here opens a group, and the fields declared after it
# (in the class body) belong to it until the next one. So a new field lands beside its neighbours.
SETTINGS_GROUPS = {
    "incoming_uri": "Batches and staging",
    "ocds_page_size": "OCDS search APIs",
    "chroma_host": "Chroma and the lexical index",
    "retention_days": "Lifecycle and load",
    "gemini_api_key": "Models",
    "gemini_enrich_model": "Gemini tuning",
    "report_currency": "Money",
    "database_url": "Database",
    "feedback_path": "Search API (shared with the pipeline)",
}
API_GROUPS = {
    "search_candidates": "Candidates and ranking",
    "embed_threads": "Runtime",
    "alert_min_score": "Saved searches and alerts",
    "max_body_bytes": "Hardening",
}


class UndocumentedSetting(Exception):
    """A settings field has no ``description=``: say what it is for before it ships."""


@dataclass
class EnvEntry:
    """One commented block of ``.env.example``: its section, its comment and the variables under it."""

    section: str
    comment: str
    variables: list[tuple[str, str]] = field(default_factory=list)


# --------------------------------------------------------------------------- settings
def settings_classes() -> list[type]:
    from search_api.settings import ApiSettings
    from tender_pipeline.settings import Settings

    return [Settings, ApiSettings]


def settings_env_names() -> set[str]:
    """Every env var a settings field reads (aliases included)."""
    return {name for model in settings_classes() for f_name, info in model.model_fields.items()
            for name in env_names(f_name, info)}


def env_names(name: str, info: Any) -> list[str]:
    alias = info.validation_alias
    choices = getattr(alias, "choices", None) or ([alias] if isinstance(alias, str) else [name])
    return [str(choice).upper() for choice in choices]


def undocumented(models: list[type] | None = None) -> list[str]:
    """``Class.field`` for every field without a description."""
    return [f"{model.__name__}.{name}" for model in models or settings_classes()
            for name, info in model.model_fields.items() if not (info.description or "").strip()]


def check_documented(models: list[type] | None = None) -> None:
    missing = undocumented(models)
    if missing:
        raise UndocumentedSetting(
            f"settings without a description: {', '.join(missing)}. Give each a Field(..., description=...) "
            "saying what it does and why it exists; docs/reference/settings.md is generated from it.")


def own_fields(model: type, base: type | None) -> list[str]:
    """Fields declared in ``model``'s own body, in order (overrides of ``base`` included)."""
    declared = [name for name in vars(model).get("__annotations__", {}) if name in model.model_fields]
    if base is None:
        return declared
    return [name for name in declared if name not in base.model_fields
            or model.model_fields[name] != base.model_fields[name]]


def grouped(model: type, names: list[str], groups: dict[str, str]) -> list[tuple[str, list[str]]]:
    for anchor in groups:
        if anchor not in names:
            raise KeyError(f"scripts/docs_hooks.py: group anchor {anchor!r} is not a field of {model.__name__}")
    if names and names[0] not in groups:
        raise KeyError(f"scripts/docs_hooks.py: {model.__name__}'s first field {names[0]!r} opens no group")
    out: list[tuple[str, list[str]]] = []
    for name in names:
        if name in groups:
            out.append((groups[name], []))
        out[-1][1].append(name)
    return out


def type_text(info: Any) -> str:
    annotation, optional = info.annotation, False
    if get_origin(annotation) in (Union, types.UnionType) and type(None) in get_args(annotation):
        optional = True
        annotation = next(arg for arg in get_args(annotation) if arg is not type(None))
    if get_origin(annotation) is Literal:
        text = " or ".join(f"`{arg}`" for arg in get_args(annotation))
    elif get_origin(annotation) is list:
        text = f"JSON list of {get_args(annotation)[0].__name__}"
    elif getattr(annotation, "__name__", "") == "SecretStr":
        text = "secret"
    else:
        text = getattr(annotation, "__name__", str(annotation))
    bounds = []
    for item in info.metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            if getattr(item, attr, None) is not None:
                bounds.append(f"{sign} {number(getattr(item, attr))}")
        if getattr(item, "pattern", None):
            bounds.append(f"matching `{item.pattern}`")
    return text + (" " + ", ".join(bounds) if bounds else "") + (", or unset" if optional else "")


def number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_text(info: Any) -> str:
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return f"`{number(value)}`"


def cell(text: str) -> str:
    """Table-safe: a pipe outside a code span would end the cell (inside one it is kept)."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(part if part.startswith("`") else part.replace("|", r"\|") for part in parts)


def settings_table(model: type, names: list[str]) -> list[str]:
    lines = ["| variable | type | default | what it does |", "|---|---|---|---|"]
    for name in names:
        info = model.model_fields[name]
        env = " or ".join(f"`{env}`" for env in env_names(name, info))
        lines.append(f"| {env} | {cell(type_text(info))} | {cell(default_text(info))} | "
                     f"{cell(info.description.strip())} |")
    return lines


def settings_markdown() -> str:
    check_documented()
    base, api = settings_classes()
    out = ["## Every process: `Settings`", "",
           "Read by the DAG tasks, the CLI and the search API (`tender_pipeline.settings.Settings`).", ""]
    for title, names in grouped(base, own_fields(base, None), SETTINGS_GROUPS):
        out += [f"### {title}", "", *settings_table(base, names), ""]
    out += ["## The search API: `ApiSettings`", "",
            "Read by the search API and the alerts DAG only (`search_api.settings.ApiSettings`, which extends "
            "`Settings`; a variable listed here again overrides its default there).", ""]
    for title, names in grouped(api, own_fields(api, base), API_GROUPS):
        out += [f"### {title}", "", *settings_table(api, names), ""]
    return "\n".join(out)


# --------------------------------------------------------------------------- .env.example
def env_example_entries(text: str | None = None) -> list[EnvEntry]:
    """The commented blocks of ``.env.example`` under its ``# ===== section`` headers."""
    if text is None:
        text = (ROOT / ".env.example").read_text()
    entries: list[EnvEntry] = []
    section, comment, current = "", [], None
    for line in text.splitlines():
        header = re.match(r"^#\s*={3,}\s*(.*)$", line)
        variable = ENV_LINE.match(line)
        if header:
            section, comment, current = header.group(1).strip(), [], None
        elif variable and section:
            if current is None or comment:
                current = EnvEntry(section, " ".join(comment))
                entries.append(current)
                comment = []
            current.variables.append((variable.group(1), variable.group(2)))
        elif line.startswith("#"):
            comment.append(line.lstrip("#").strip())
        else:
            comment, current = [], None
    return entries


def env_other_markdown() -> str:
    settings = settings_env_names()
    out: list[str] = []
    last_section = None
    for entry in env_example_entries():
        variables = [(name, value) for name, value in entry.variables if name not in settings]
        if not variables:
            continue
        if entry.section != last_section:
            out += ["", f"### {entry.section[:1].upper()}{entry.section[1:]}", "",
                    "| variable | value in `.env.example` | what it does |", "|---|---|---|"]
            last_section = entry.section
        names = "<br>".join(f"`{name}`" for name, _ in variables)
        values = "<br>".join(f"`{value}`" if value else "empty" for _, value in variables)
        out.append(f"| {names} | {cell(values)} | {cell(entry.comment)} |")
    return "\n".join(out).strip()


# --------------------------------------------------------------------------- CLI and API
def _help(argv: list[str]) -> str:
    from tender_pipeline.cli import main

    buffer, columns = io.StringIO(), os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal: the same width on every machine
    try:
        with redirect_stdout(buffer), suppress(SystemExit):
            main([*argv, "--help"])
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    return buffer.getvalue().rstrip()


def cli_markdown() -> str:
    top = _help([])
    found = re.search(r"\{([a-z,_-]+)\}", top)
    if not found:
        raise ValueError("python -m tender_pipeline --help lists no subcommands")
    out = ["```text", top, "```"]
    for command in found.group(1).split(","):
        out += ["", f"### `{command}`", "", "```text", _help([command]), "```"]
    return "\n".join(out)


def openapi() -> dict:
    from search_api.main import app  # importing it does no I/O

    return app.openapi()


def api_operations_markdown(spec: dict | None = None) -> str:
    spec = spec or openapi()
    out = ["| operation | what it does |", "|---|---|"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            text = operation.get("summary", "")
            first = (operation.get("description") or "").strip().split("\n\n")[0].replace("\n", " ")
            if first:
                text += f". {first}"
            out.append(f"| `{method.upper()} {path}` | {cell(text)} |")
    return "\n".join(out)


GENERATORS = {
    "settings": settings_markdown,
    "env-other": env_other_markdown,
    "cli": cli_markdown,
    "api-operations": api_operations_markdown,
}


def render(markdown: str) -> str:
    """Replace every ``<!-- generated: NAME -->`` line by its block; an unknown name is an error."""
    def block(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise KeyError(f"no generator for <!-- generated: {name} --> (known: {sorted(GENERATORS)})")
        return GENERATORS[name]()

    return MARKER.sub(block, markdown)


# --------------------------------------------------------------------------- mkdocs hooks
def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render(markdown)


def on_files(files: Any, config: Any) -> Any:
    """Serve the OpenAPI document beside the REST reference, so the static site has it too."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(openapi(), indent=2)))
    return files
