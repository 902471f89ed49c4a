"""Customers to and from CSV, and the `customer list|import|export` commands."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from appliance.cli_customers import add_commands
from appliance.crm.csv_io import COLUMNS, export_customers, import_customers
from appliance.crm.settings import CrmError, CrmSettings
from appliance.crm.customer_store import all_customers, count_customers, create_customer, customer_by_phone, get_customer
from appliance.store.db import open_database
from appliance.store.directory import set_setting

FR = "FR"
HEADER = ",".join(COLUMNS) + "\n"


def _snapshot(db) -> list[dict]:
    """Every customer without ids and times, for comparing two databases."""
    return [{k: v for k, v in c.items() if k not in ("id", "created_at", "updated_at")} for c in all_customers(db)]


def test_bad_rows_are_reported_by_line_and_change_nothing(db):
    ann = create_customer(db, region=FR, name="Ann", company="Acme", phones=["0612345678"], email="ann@acme.fr")
    bob = create_customer(db, region=FR, name="Bob", phones=["0699999999"])
    before = _snapshot(db)
    text = HEADER + "\n".join([
        'Cleo,Beta,01 42 68 53 00,cleo@beta.fr,regular,"golf; wine",',  # line 2: added
        'Ann Changed,,0612345678;not-a-phone,,,,',  # line 3: bad phone
        'Mixed,,0612345678|0699999999,,,,',  # line 4: two owners
        'Ann Again,,0612345678,not-an-email,,,',  # line 5: bad email
        'Gold,,0700000001,,gold,,',  # line 6: unknown segment
        ',Lonely Company,,,,,',  # line 7: no name and no phone
        'Long,,0700000002,,,,' + "x" * 10_001,  # line 8: too long
        'Dan,,0700000003,,,,"notes on',  # lines 9-10: a quoted newline inside the notes
        'two lines"',
        'Eve,,0700000004,,,,,extra',  # line 11: more cells than columns
        ',,,,,,',  # line 12: blank, as spreadsheets leave them: skipped
        '',
        'Fay,,0700000005,,,,',  # line 14: added
    ]) + "\n"
    report = import_customers(db, text, FR)
    assert report.added == 3 and report.updated == 0
    assert [line for line, _ in report.rejected] == [3, 4, 5, 6, 7, 8, 11]
    reasons = dict(report.rejected)
    assert "not a phone number: 'not-a-phone'" in reasons[3]
    assert "different customers: Ann, Bob" in reasons[4]
    assert "not an email address" in reasons[5]
    assert "unknown segment 'gold'" in reasons[6]
    assert reasons[7] == "no name and no phone"
    assert "longer than 10000 characters" in reasons[8]
    assert "8 cells but the header has 7 columns" in reasons[11]
    assert report.warnings == []
    # the existing customers are untouched by the rejected rows
    assert [c for c in _snapshot(db) if c["name"] in ("Ann", "Bob")] == before
    assert get_customer(db, ann)["phones"] == ["+33612345678"] and get_customer(db, bob)["name"] == "Bob"
    cleo = customer_by_phone(db, "+33142685300")
    assert cleo["name"] == "Cleo" and cleo["segment"] == "regular" and cleo["tags"] == ["golf", "wine"]
    assert customer_by_phone(db, "+33700000003")["notes"] == "notes on\ntwo lines"
    assert customer_by_phone(db, "+33700000001") is None
    assert count_customers(db) == 5


def test_a_matching_phone_updates_the_customer(db):
    ann = create_customer(db, region=FR, name="Ann", company="Acme", phones=["0612345678"], notes="old",
                          tags=["a"], segment_override="vip")
    text = "Phone,Company,Notes,Segment,Tags\n+33 6 12 34 56 78 ; 01 42 68 53 00,,new notes,,\n"
    report = import_customers(db, text, FR)
    assert (report.added, report.updated, report.rejected) == (0, 1, [])
    c = get_customer(db, ann)
    assert c["name"] == "Ann" and c["company"] == "Acme" and c["notes"] == "new notes"  # empty cells keep values
    assert c["phones"] == ["+33612345678", "+33142685300"] and c["tags"] == ["a"] and c["segment"] == "vip"
    report = import_customers(db, "phones,segment\n0612345678,new\n", FR)
    assert report.updated == 1 and get_customer(db, ann)["segment_override"] is None


def test_rows_without_phones_match_by_name(db):
    create_customer(db, region=FR, name="Ann", company="Old")
    report = import_customers(db, "name,company\nann,New\nZed,Zeta\n", FR)
    assert (report.added, report.updated) == (1, 1)
    assert [c["company"] for c in all_customers(db)] == ["New", "Zeta"]
    create_customer(db, region=FR, name="Zed")
    report = import_customers(db, "name,company\nZed,Again\n", FR)
    assert report.rejected == [(2, "2 customers are called 'Zed': add a phone to say which one")]


def test_unknown_columns_are_a_warning(db):
    report = import_customers(db, "\ufeffName,Fax,phones\nAnn,123,0612345678\n", FR)
    assert report.added == 1 and report.rejected == []
    assert report.warnings == ['unknown column "Fax" ignored (known: name, company, phones, email, segment, tags, '
                               'notes)']
    assert customer_by_phone(db, "+33612345678")["name"] == "Ann"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"name,phones\nAnn,0612345678\nBob\x00,0699999999\n", "NUL bytes"),
        (b"name,phones\nAnn,0612345678\n\xff\xfe,0699999999\n", "not UTF-8"),
        ("company,email\nAcme,a@acme.fr\n", "at least name or phones"),
        ("name,Name\nAnn,Ann\n", 'the column "name" appears twice'),
        ("", "the file is empty"),
        ('name,phones\n"Ann,0612345678\n', "not valid CSV"),
    ],
)
def test_unusable_files_store_nothing(db, data, message):
    with pytest.raises(CrmError, match=message):
        import_customers(db, data, FR)
    assert count_customers(db) == 0


def test_bytes_with_a_bom_are_read(db):
    report = import_customers(db, "\ufeffname,phones\nZoë,0612345678\n".encode("utf-8"), FR)
    assert report.added == 1 and customer_by_phone(db, "+33612345678")["name"] == "Zoë"


def test_export_round_trips(db, tmp_path):
    create_customer(db, region=FR, name="Ann, the \"boss\"", company="=HYPERLINK(1)", phones=["0612345678",
                    "0142685300"], email="ann@acme.fr", segment_override="vip", tags=["golf", "-vip"],
                    notes="line one\nline two")
    create_customer(db, region=FR, name="Bob")
    create_customer(db, region=FR, phones=["0700000001"])
    text = export_customers(db)
    assert text.splitlines()[0] == ",".join(COLUMNS)
    assert "'=HYPERLINK(1)" in text  # a spreadsheet must not run it
    other = open_database(tmp_path / "other.db")
    report = import_customers(other, text, FR)
    assert (report.added, report.updated, report.rejected) == (3, 0, [])
    assert _snapshot(other) == _snapshot(db)
    again = import_customers(db, text, FR)  # into the same database: nothing new, nothing changed
    assert (again.added, again.updated, again.rejected) == (0, 3, [])
    assert _snapshot(other) == _snapshot(db)
    other.close()


# --- the commands ---


def _parse(argv: list[str]) -> argparse.Namespace:
    """A parser built like appliance.cli._parser builds its groups."""
    parser = argparse.ArgumentParser(prog="switchboard")
    sub = parser.add_subparsers(dest="command")

    def group(name: str, help_text: str) -> argparse._SubParsersAction:
        return sub.add_parser(name, help=help_text).add_subparsers(dest=f"{name}_command")

    def leaf(parent, name, func, help_text):  # type: ignore[no-untyped-def]
        cmd = parent.add_parser(name, help=help_text)
        cmd.add_argument("--data-dir", type=Path, default=None)
        cmd.set_defaults(func=func)
        return cmd

    add_commands(group, leaf)
    return parser.parse_args(argv)


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    args = _parse(list(argv))
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_list_export(tmp_path, capsys):
    data = tmp_path / "data"
    db = open_database(data / "switchboard.db")
    set_setting(db, "crm", CrmSettings(region="FR").to_dict())
    db.close()
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("name,phones,fax\nAnn,06 12 34 56 78,1\nBad,call me,2\n", encoding="utf-8")
    code, out, err = _run(capsys, "customer", "import", str(csv_file), "--data-dir", str(data))
    assert code == 1
    assert "added 1, updated 0, rejected 1" in out and "line 3: not a phone number: 'call me'" in out
    assert 'unknown column "fax"' in err
    code, out, _ = _run(capsys, "customer", "list", "--search", "ann", "--data-dir", str(data))
    assert code == 0 and "Ann" in out and "+33 6 12 34 56 78" in out
    code, out, _ = _run(capsys, "customer", "list", "--search", "nobody", "--data-dir", str(data))
    assert "(none)" in out
    code, out, _ = _run(capsys, "customer", "export", "--data-dir", str(data))
    assert code == 0 and out.splitlines() == [",".join(COLUMNS), "Ann,,+33612345678,,,,"]
    target = tmp_path / "out.csv"
    code, _, _ = _run(capsys, "customer", "export", str(target), "--data-dir", str(data))
    assert code == 0 and target.read_text(encoding="utf-8").splitlines()[1] == "Ann,,+33612345678,,,,"
    csv_file.write_text("name,phones\nCleo,0700000001\n", encoding="utf-8")
    code, out, _ = _run(capsys, "customer", "import", str(csv_file), "--data-dir", str(data))
    assert code == 0 and "added 1, updated 0, rejected 0" in out
