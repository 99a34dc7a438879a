"""Reading and validating batches: encodings, Excel, quarantine reasons, duplicates, threshold."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook

from tender_pipeline import pipeline, staging
from tender_pipeline.profiles import UnknownLayoutError, load_profiles
from tender_pipeline.readers import read_table
from tender_pipeline.settings import Settings
from tender_pipeline.validate import BatchRejectedError, read_files, validate_tables

HEADER = "tender_id,title,description,buyer,country,closing_date,value_amount,currency,cpv_codes\n"


def _validate(path: Path, **kw):
    return validate_tables(read_files([(path, path.name)]), load_profiles(), **kw)


def test_utf8_bom_and_cp1252_fallback(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufefftender_id,title\nT1,Café renovation\n".encode())
    table = read_table(bom)
    assert table.headers[0] == "tender_id"  # the BOM is not part of the first column name
    assert _validate(bom).valid[0]["record"]["title"] == "Café renovation"

    legacy = tmp_path / "legacy.csv"
    legacy.write_bytes("tender_id,title\nT2,Café – rénovation\n".encode("cp1252"))
    result = _validate(legacy)
    assert result.valid[0]["record"]["title"] == "Café – rénovation"
    assert any("cp1252" in w and "legacy.csv" in w for w in result.warnings)


def test_xlsx_batch(tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(["tender_id", "title", "closing_date", "value_amount"])
    ws.append(["X1", "Supply of laptops", "2026-12-01", 125000])
    ws.append([None, None, None, None])
    ws.append(["X2", "Bridge repair", "05/01/2027", "1,500.50"])
    path = tmp_path / "batch.xlsx"
    wb.save(path)
    result = _validate(path)
    records = {v["record"]["tender_id"]: v["record"] for v in result.valid}
    assert records["X1"]["value_amount"] == 125000.0
    assert records["X2"]["closing_date"] == "2027-01-05"  # day first
    assert records["X2"]["value_amount"] == 1500.5
    assert [v["row"] for v in result.valid] == [2, 4]


def test_quarantine_names_file_row_field_and_reason(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        HEADER
        + "T1,Good row,desc,Buyer,Ghana,2026-12-01,100,GHS,45000000\n"
        + ",Missing id,,,,,,,\n"
        + "T3,Bad date,,,,31/02/2026,,,\n"
        + "T4,Bad amount,,,,,lots of money,,\n"
        + "T5,   ,,,,,,,\n",
        encoding="utf-8",
    )
    result = _validate(path)
    assert [v["record"]["tender_id"] for v in result.valid] == ["T1"]
    got = {(q["row"], q["field"]) for q in result.quarantine}
    assert got == {(3, "tender_id"), (4, "closing_date"), (5, "value_amount"), (6, "title")}
    for q in result.quarantine:
        assert q["file"] == "mixed.csv" and q["reason"]
    by_row = {q["row"]: q["reason"] for q in result.quarantine}
    assert "required" in by_row[3] and "31/02/2026" in by_row[4]


def test_duplicates_keep_the_last_and_counts_add_up(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text(HEADER + "T1,First,,,,,,,\nT2,Other,,,,,,,\nT1,Second,,,,,,,\n,broken,,,,,,,\n", encoding="utf-8")
    result = _validate(path)
    titles = {v["record"]["tender_id"]: v["record"]["title"] for v in result.valid}
    assert titles == {"T1": "Second", "T2": "Other"}
    counts = result.per_file["dups.csv"]
    assert (counts.rows, counts.valid, counts.duplicates, counts.quarantined) == (4, 2, 1, 1)
    assert counts.rows == counts.valid + counts.duplicates + counts.quarantined


def test_threshold_rejects_batch_after_writing_quarantine(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text(HEADER + "T1,ok,,,,,,,\n" + ",no id,,,,,,,\n" * 3, encoding="utf-8")
    settings = Settings(staging_uri=str(tmp_path / "st"), quarantine_threshold=0.2)
    run = pipeline.fetch(settings, "manual__bad", source=str(src))
    with pytest.raises(BatchRejectedError, match=r"3 of 4 rows \(75%\).*tender_id: required field is empty"):
        pipeline.validate(settings, run)
    with (Path(run) / "quarantine.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], r["row"], r["field"]) for r in rows] == [("bad.csv", str(n), "tender_id") for n in (3, 4, 5)]
    # under a looser threshold the same batch passes
    loose = settings.model_copy(update={"quarantine_threshold": 0.8})
    pipeline.validate(loose, run)
    assert staging.read_json(Path(run) / "validate.json")["valid"] == 1


def test_unknown_layout_lists_columns_and_requirements(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(UnknownLayoutError) as err:
        _validate(path)
    message = str(err.value)
    assert "odd.csv" in message and "foo, bar" in message and "canonical: tender_id, title" in message


def test_limit_caps_rows_read(tmp_path, sample_csv):
    result = validate_tables(read_files([(sample_csv, sample_csv.name)]), load_profiles(), limit=25)
    assert result.rows_read == 25 and len(result.valid) == 25
