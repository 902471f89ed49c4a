"""Customers to and from CSV: each row imports on its own, bad rows are reported by line and skipped."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from sqlite_utils import Database

from appliance.crm.settings import CrmError
from appliance.crm.customer_store import (
    SEGMENTS,
    CustomerError,
    add_phones,
    all_customers,
    clean_phones,
    create_customer,
    customer_by_phone,
    customers_named,
    update_customer,
)
from appliance.store.db import transaction

COLUMNS = ("name", "company", "phones", "email", "segment", "tags", "notes")
ALIASES = {"phone": "phones", "tag": "tags", "note": "notes"}
MAX_LINE = 10_000
MAX_ROWS = 100_000
_LIST = re.compile(r"[;|]")
# A spreadsheet runs a cell starting with one of these as a formula: export them quoted with "'".
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ImportReport:
    """What an import did: rows added and updated, rows rejected (line number, reason), header warnings."""

    added: int = 0
    updated: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def import_customers(db: Database, text: str | bytes, region: str) -> ImportReport:
    """Add or update customers from CSV text (UTF-8, BOM or not); CrmError when the file itself is unusable."""
    (header_line, header, _), rows = _parse(_decode(text))
    report = ImportReport()
    columns: list[str | None] = []
    for raw in header:
        name = ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if name in columns:
            raise CrmError(f'line {header_line}: the column "{name}" appears twice')
        if name not in COLUMNS:
            report.warnings.append(f'unknown column "{raw.strip()}" ignored (known: {", ".join(COLUMNS)})')
            name = None
        columns.append(name)
    if "name" not in columns and "phones" not in columns:
        raise CrmError("the first line must name the columns, with at least name or phones "
                       f"(e.g. {','.join(COLUMNS)})")
    for line, cells, size in rows:
        try:
            if size > MAX_LINE:
                raise CustomerError(f"longer than {MAX_LINE} characters")
            if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns):]):
                raise CustomerError(f"{len(cells)} cells but the header has {len(columns)} columns")
            values = {col: _unquote(cell) for col, cell in zip(columns, cells) if col is not None}
            outcome = _import_row(db, values, region)
        except (CustomerError, CrmError) as exc:
            report.rejected.append((line, str(exc)))
            continue
        if outcome == "added":
            report.added += 1
        else:
            report.updated += 1
    return report


def export_customers(db: Database) -> str:
    """Every customer as CSV with the COLUMNS header; importing it gives the same customers back."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for c in all_customers(db):
        writer.writerow([
            _quote(c["name"]), _quote(c["company"]), "; ".join(c["phones"]), _quote(c["email"]),
            c["segment_override"] or "", _quote("; ".join(c["tags"])), _quote(c["notes"]),
        ])
    return out.getvalue()


def _import_row(db: Database, values: dict[str, str], region: str) -> str:
    """Add or update one customer in its own transaction; "added" or "updated"."""
    name = values.get("name", "").strip()
    phones = clean_phones([p for p in _LIST.split(values.get("phones", "")) if p.strip()], region)
    if not name and not phones:
        raise CustomerError("no name and no phone")
    segment = values.get("segment", "").strip().lower()
    if segment and segment not in SEGMENTS:
        raise CustomerError(f"unknown segment {segment!r}: expected one of {', '.join(SEGMENTS)}")
    fields = {key: values[key].strip() for key in ("name", "company", "email", "notes")
              if values.get(key, "").strip()}
    tags = [t.strip() for t in _LIST.split(values.get("tags", "")) if t.strip()]
    if tags:
        fields["tags"] = tags
    if segment:
        fields["segment_override"] = None if segment == "new" else segment  # "new" hands it back to the rules
    with transaction(db):
        target = _match(db, name, phones)
        if target is None:
            create_customer(db, region=region, phones=phones, **fields)
            return "added"
        update_customer(db, target, region=region, **fields)
        add_phones(db, target, phones, region)
        return "updated"


def _match(db: Database, name: str, phones: list[str]) -> int | None:
    """The existing customer a row is about: by phone, else (no phone given) by a name only one customer has."""
    owners: dict[int, str] = {}
    for phone in phones:
        customer = customer_by_phone(db, phone)
        if customer is not None:
            owners.setdefault(customer["id"], customer["name"] or f"#{customer['id']}")
    if len(owners) > 1:
        raise CustomerError(f"the phones belong to different customers: {', '.join(owners.values())}")
    if owners:
        return next(iter(owners))
    if phones:
        return None
    named = customers_named(db, name)
    if len(named) > 1:
        raise CustomerError(f"{len(named)} customers are called {name!r}: add a phone to say which one")
    return named[0] if named else None


def _decode(text: str | bytes) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise CrmError(f"the file is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8") from None
    if "\x00" in text:
        raise CrmError("the file contains NUL bytes: it is not a CSV text file")
    return text.removeprefix("\ufeff")


def _parse(text: str) -> tuple[tuple[int, list[str], int], list[tuple[int, list[str], int]]]:
    """The header and the data rows, each (first line number, cells, characters); blank lines skipped."""
    lines = io.StringIO(text, newline="").readlines()
    sizes = [len(line.rstrip("\r\n")) for line in lines]
    reader = csv.reader(lines, strict=True)  # an unclosed quote would swallow the rest of the file
    records: list[tuple[int, list[str], int]] = []
    last = 0
    try:
        for cells in reader:
            first, last = last + 1, reader.line_num
            if cells and any(c.strip() for c in cells):
                records.append((first, cells, sum(sizes[first - 1:last])))
            if len(records) > MAX_ROWS + 1:
                raise CrmError(f"more than {MAX_ROWS} customers in one file: split it")
    except csv.Error as exc:
        raise CrmError(f"line {reader.line_num}: not valid CSV ({exc})") from None
    if not records:
        raise CrmError("the file is empty: expected a header line such as " + ",".join(COLUMNS))
    return records[0], records[1:]


def _quote(cell: str) -> str:
    return "'" + cell if cell.startswith(_FORMULA) else cell


def _unquote(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:2] and cell[1:2] in "".join(_FORMULA) else cell
