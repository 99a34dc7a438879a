"""The docs site's generated pages, checked without building the site (`make docs` builds it, strict).

scripts/docs_hooks.py fills `<!-- generated: NAME -->` lines from the code: the settings fields, the
other variables of .env.example, the CLI's help and the search API's OpenAPI document.
"""

from __future__ import annotations

import re

import pytest
from pydantic import Field

from scripts import docs_hooks
from tender_pipeline.settings import Settings
from tests.services import REPO


def test_every_setting_has_a_description():
    assert docs_hooks.undocumented() == []


def test_a_setting_without_a_description_fails_the_docs_build():
    class Careless(Settings):
        new_knob: int = 3
        described_knob: int = Field(4, description="Says why it exists.")

    assert docs_hooks.undocumented([Careless]) == ["Careless.new_knob"]
    with pytest.raises(docs_hooks.UndocumentedSetting, match="Careless.new_knob"):
        docs_hooks.check_documented([Careless])


def test_settings_rows_carry_type_default_and_description():
    page = docs_hooks.settings_markdown()
    row = next(line for line in page.splitlines() if line.startswith("| `INCOMING_SETTLE_S` |"))
    assert "float ≥ 0" in row and "`60`" in row and "mtime" in row
    # an alias is named, and the API's override appears in the API's section with its own default
    api_part = page.split("## The search API")[1]
    assert "`EMBED_THREADS` or `TORCH_THREADS`" in api_part and "| `1` |" in api_part
    assert "`GEMINI_API_KEY` | secret, or unset | unset |" in page


def test_a_new_field_joins_the_group_of_the_field_before_it():
    names = ["incoming_uri", "new_incoming_knob", "chroma_host", "chroma_new"]
    groups = docs_hooks.grouped(Settings, names, {"incoming_uri": "A", "chroma_host": "B"})
    assert groups == [("A", ["incoming_uri", "new_incoming_knob"]), ("B", ["chroma_host", "chroma_new"])]
    with pytest.raises(KeyError, match="renamed_anchor"):
        docs_hooks.grouped(Settings, names, {"incoming_uri": "A", "renamed_anchor": "B"})


def test_other_variables_come_from_env_example_with_their_comments():
    text = (REPO / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", text, re.MULTILINE))
    others = documented - docs_hooks.settings_env_names()
    page = docs_hooks.env_other_markdown()
    missing = {var for var in others if f"`{var}`" not in page}
    assert not missing, f"the generated variables table lacks {sorted(missing)}"
    assert not any(f"`{var}`" in page for var in docs_hooks.settings_env_names()), "settings belong to their table"
    row = next(line for line in page.splitlines() if "`TENDER_MAX_ACTIVE_RUNS`" in line)
    assert "later batches must win" in row


def test_env_example_parser_keeps_each_comment_with_its_variables():
    entries = docs_hooks.env_example_entries(
        "# header, before any section\n# IGNORED=1\n"
        "# ====== first\n# Explains A and B,\n# over two lines.\n# A=1\nB=\n\n# C=3\n"
        "# Explains D.\n# D=x|y\n")
    assert [(e.section, e.comment, e.variables) for e in entries] == [
        ("first", "Explains A and B, over two lines.", [("A", "1"), ("B", "")]),
        ("first", "", [("C", "3")]),
        ("first", "Explains D.", [("D", "x|y")]),
    ]


def test_cli_reference_is_the_commands_own_help():
    page = docs_hooks.cli_markdown()
    for command in ("ingest", "maintain", "rebuild", "db"):
        assert f"### `{command}`" in page
    assert "{lexical,chroma,staging}" in page and "usage: python -m tender_pipeline ingest" in page


def test_api_reference_lists_every_operation_of_the_openapi_document():
    spec = docs_hooks.openapi()
    page = docs_hooks.api_operations_markdown(spec)
    for path, operations in spec["paths"].items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in page


def test_every_generated_marker_in_the_docs_has_a_generator():
    pages = [path for path in (REPO / "docs").rglob("*.md") if docs_hooks.MARKER.search(path.read_text())]
    assert {path.name for path in pages} >= {"settings.md", "cli.md", "api.md"}
    for path in pages:
        assert not docs_hooks.MARKER.search(docs_hooks.render(path.read_text())), path
    with pytest.raises(KeyError, match="no generator"):
        docs_hooks.render("<!-- generated: nonsense -->")
