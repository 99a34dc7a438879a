"""Hostile batch files through the real fetch + validate stages: no traceback, every row accounted for.

Property-based (hypothesis): CSV written in random encodings with stray
quotes, NUL bytes, line breaks inside fields, formula-injection strings and
HTML in titles; the same rows as XLSX; and byte-level mutations of both. The
outcome of each is either a validated batch whose counts add up per file —
rows read = valid + duplicates + quarantined — or one of the input errors the
DAG and CLI report as a single line naming the file.

Examples per property: the ``ci`` hypothesis profile (conftest.py) by default;
``HYPOTHESIS_PROFILE=fuzz-long`` for a long run. The giant cases (1 MB fields,
10,000 columns, 100,000 rows) are single explicit examples.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tender_pipeline import pipeline, staging
from tender_pipeline.errors import USER_ERRORS
from tender_pipeline.settings import Settings

CANONICAL = ["tender_id", "title", "description", "buyer", "country", "region", "city", "published_date",
             "closing_date", "value_amount", "currency", "category", "cpv_codes", "notice_type", "url", "source"]
HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)",
           "=HYPERLINK(\"http://evil.example\",\"x\")", "<script>alert(1)</script>",
           "<img src=x onerror=alert(1)>", '"', '""', 'say "hi"', "a,b", "line\nbreak", "cr\rlf\r\n", "\x00",
           "nul\x00in\x00middle", "\ufeffbom", "ñandú ÅÄÖ €", "\u202eright-to-left", "   ", "\t=tab", "2026-13-45",
           "1e308", "-5", "NaN", "∞"]
nasty = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE))
nonblank_ascii = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9/_. -]{0,15}", fullmatch=True)
# A row is all-empty (skipped as blank) or has an ASCII non-blank id or title, whose blankness no encoding changes.
row_values = st.one_of(
    st.just(None),
    st.tuples(st.one_of(nonblank_ascii, st.sampled_from(HOSTILE[:5]), nasty), nonblank_ascii,
              st.lists(nasty, min_size=len(CANONICAL) - 2, max_size=len(CANONICAL) - 2)),
    st.tuples(nasty, nonblank_ascii, st.lists(nasty, min_size=len(CANONICAL) - 2, max_size=len(CANONICAL) - 2)),
)
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def table_rows(drawn: list) -> list[list[str]]:
    return [[""] * len(CANONICAL) if r is None else [r[0], r[1], *r[2]] for r in drawn]


def expected_rows(rows: list[list[str]]) -> int:
    return sum(any(c for c in row) for row in rows)


def run_validate(path: Path, display: str | None = None) -> dict | Exception:
    """fetch + validate on a private staging folder; returns what the stage wrote, or the input error."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(staging_uri=tmp, quarantine_threshold=1.0)
        try:
            run = Path(pipeline.fetch(settings, "fuzz", source=str(path)))
            pipeline.validate(settings, str(run))
        except USER_ERRORS as exc:
            return exc
        stats = staging.read_json(run / "validate.json")
        valid = list(staging.read_jsonl(run / "valid.jsonl"))
        with (run / "quarantine.csv").open(newline="", encoding="utf-8") as fh:
            quarantine = list(csv.reader(fh))
        return {"stats": stats, "valid": valid, "quarantine": quarantine}


def assert_accounted(out: dict, name: str) -> None:
    stats = out["stats"]
    assert set(stats["per_file"]) == {name}
    counts = stats["per_file"][name]
    assert counts["rows"] == counts["valid"] + counts["duplicates"] + counts["quarantined"], counts
    assert stats["rows_read"] == counts["rows"] and stats["valid"] == len(out["valid"]) == counts["valid"]
    assert stats["quarantined"] == len(out["quarantine"]) - 1 == counts["quarantined"]
    ids = [v["record"]["tender_id"] for v in out["valid"]]
    assert len(ids) == len(set(ids))  # one record per id
    header, *rows = out["quarantine"]
    assert header == ["file", "row", "field", "reason", "tender_id", "title"]
    for row in rows:
        assert row[0] == name and int(row[1]) >= 2 and row[2] and row[3], row
        assert not any(cell.startswith(FORMULA) for cell in row), row  # no live formula for a spreadsheet


def assert_clear_error(exc: Exception, name: str) -> None:
    message = str(exc)
    assert name in message and "\n" not in message and "Traceback" not in message, message


def write_csv(path: Path, header: list[str], rows: list[list[str]], encoding: str) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding, errors="replace"))


@given(drawn=st.lists(row_values, max_size=40), encoding=st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"]),
       extra=st.integers(0, 3))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_csv_in_any_encoding_accounts_for_every_row(drawn, encoding, extra):
    rows = [r + [f"x{i}" for i in range(extra)] for r in table_rows(drawn)]
    header = CANONICAL + [f"extra_{i}" for i in range(extra)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.csv"
        write_csv(path, header, rows, encoding)
        out = run_validate(path)
    assert not isinstance(out, Exception), out
    note(json.dumps(out["stats"], default=str)[:2000])
    assert out["stats"]["rows_read"] == expected_rows(rows)
    assert_accounted(out, "batch.csv")


XLSX_ILLEGAL = dict.fromkeys([*range(0, 9), 11, 12, *range(14, 32)])  # control characters a workbook cannot hold


@given(drawn=st.lists(row_values, max_size=25))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_xlsx_accounts_for_every_row(drawn):
    from openpyxl import Workbook

    rows = [[cell.translate(XLSX_ILLEGAL) for cell in row] for row in table_rows(drawn)]
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(CANONICAL)
    for row in rows:
        sheet.append([cell or None for cell in row])  # an empty cell, as a spreadsheet has it
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "batch.xlsx"
        workbook.save(path)
        out = run_validate(path)
    assert not isinstance(out, Exception), out
    assert out["stats"]["rows_read"] == sum(any(c.strip() for c in row) for row in rows)
    assert_accounted(out, "batch.xlsx")


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, cut, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + cut:]
    return data


edits = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 4),
                           st.sampled_from([b'"', b'""', b"\x00", b",", b"\n", b"\r", b"\xff\xfe", b"\xe2\x82",
                                            b"=cmd|' /C calc'!A0", b"PK\x03\x04", b""])), max_size=8)


@given(drawn=st.lists(row_values, min_size=1, max_size=15), changes=edits,
       suffix=st.sampled_from([".csv", ".xlsx"]), encoding=st.sampled_from(["utf-8", "utf-16", "cp1252"]))
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_mangled_bytes_never_crash_and_still_add_up(drawn, changes, suffix, encoding):
    """Stray quotes, NULs, cut bytes, broken zips: a validated batch that adds up, or one clear line."""
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.csv"
        write_csv(clean, CANONICAL, table_rows(drawn), encoding)
        data = clean.read_bytes()
        if suffix == ".xlsx":
            from openpyxl import Workbook

            workbook = Workbook()
            workbook.active.append(CANONICAL)
            for row in table_rows(drawn):
                workbook.active.append([c.translate(XLSX_ILLEGAL) for c in row])
            buffer = io.BytesIO()
            workbook.save(buffer)
            data = buffer.getvalue()
        path = Path(tmp) / f"mangled{suffix}"
        path.write_bytes(_mutate(data, changes))
        out = run_validate(path)
    if isinstance(out, Exception):
        assert_clear_error(out, path.name)
    else:
        assert_accounted(out, path.name)


# --------------------------------------------------------------------------- the giant cases, once each
def _canonical_row(i: int, **values: str) -> list[str]:
    row = dict.fromkeys(CANONICAL, "")
    row.update({"tender_id": f"F-{i}", "title": f"Tender {i}", **values})
    return [row[c] for c in CANONICAL]


@pytest.mark.slow
def test_one_megabyte_fields(tmp_path):
    big = "w" * 1_000_000
    rows = [_canonical_row(1, description=big), _canonical_row(2, title="t" * 1_000_000), _canonical_row(3)]
    path = tmp_path / "wide.csv"
    write_csv(path, CANONICAL, rows, "utf-8")
    out = run_validate(path)
    assert not isinstance(out, Exception), out
    assert_accounted(out, "wide.csv")
    assert out["stats"]["rows_read"] == 3


@pytest.mark.slow
def test_ten_thousand_columns(tmp_path):
    header = CANONICAL + [f"col_{i}" for i in range(10_000 - len(CANONICAL))]
    rows = [_canonical_row(i) + ["v"] * (len(header) - len(CANONICAL)) for i in range(20)]
    path = tmp_path / "columns.csv"
    write_csv(path, header, rows, "utf-8")
    out = run_validate(path)
    assert not isinstance(out, Exception), out
    assert (out["stats"]["rows_read"], out["stats"]["valid"]) == (20, 20)
    assert_accounted(out, "columns.csv")


@pytest.mark.slow
def test_one_hundred_thousand_tiny_rows(tmp_path):
    rows = [[f"R-{i % 90_000}", f"t{i}"] + [""] * (len(CANONICAL) - 2) for i in range(100_000)]
    rows[500][1] = ""  # one bad row among them
    path = tmp_path / "many.csv"
    write_csv(path, CANONICAL, rows, "utf-8")
    out = run_validate(path)
    assert not isinstance(out, Exception), out
    stats = out["stats"]
    # ids R-0 … R-9999 appear twice (the later row wins); R-500's first row is the bad one
    counts = (stats["rows_read"], stats["valid"], stats["duplicates"], stats["quarantined"])
    assert counts == (100_000, 90_000, 9_999, 1)
    assert_accounted(out, "many.csv")


def test_a_stray_quote_is_an_error_naming_the_row_not_silently_swallowed_rows(tmp_path):
    path = tmp_path / "stray.csv"
    path.write_text("tender_id,title\nA-1,Fine\nA-2,\"Broken title\nA-3,Next\nA-4,Last\n", encoding="utf-8")
    out = run_validate(path)
    assert isinstance(out, Exception)
    assert_clear_error(out, "stray.csv")
    assert "row 3" in str(out) and "line 3" in str(out) and "never closed" in str(out)


def test_formula_strings_are_kept_as_data_but_defused_in_the_quarantine_file(tmp_path):
    path = tmp_path / "formulas.csv"
    rows = [_canonical_row(1, title="=cmd|' /C calc'!A0"), ["=2+5", ""] + [""] * (len(CANONICAL) - 2)]
    write_csv(path, CANONICAL, rows, "utf-8")
    out = run_validate(path)
    assert [v["record"]["title"] for v in out["valid"]] == ["=cmd|' /C calc'!A0"]  # data is data
    assert out["quarantine"][1][4] == "'=2+5"  # the id of the quarantined row, as a spreadsheet shows it
