"""`switchboard customer list|import|export`: the CRM's customers from the command line."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from .cli_support import UsageError, open_store, print_table
from .crm.csv_io import export_customers, import_customers
from .crm.phones import display
from .crm.settings import CrmError, load_crm_settings
from .crm.customer_store import count_customers, list_customers, search_customers

Group = Callable[[str, str], argparse._SubParsersAction]
Leaf = Callable[..., argparse.ArgumentParser]


def add_commands(group: Group, leaf: Leaf) -> argparse._SubParsersAction:
    """Add the `customer` command group with list, import and export; returns it for more sub-commands."""
    customer = group("customer", "Customers: list, search, import and export as CSV.")
    cmd = leaf(customer, "list", _list, "List customers, or those matching a search.")
    cmd.add_argument("--search", metavar="Q", help="part of a name, company, email or phone number")
    cmd.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd = leaf(customer, "search", _search, "Find customers by part of a name, company, email or phone number.")
    cmd.add_argument("query", help="what to look for")
    cmd.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    cmd.add_argument("--json", action="store_true", help="print JSON")
    cmd = leaf(customer, "import", _import, "Add or update customers from a CSV file (UTF-8, with a header).")
    cmd.add_argument("file", type=Path, help="columns: name, company, phones, email, segment, tags, notes")
    cmd = leaf(customer, "export", _export, "Write every customer as CSV (to stdout without FILE).")
    cmd.add_argument("file", type=Path, nargs="?", help="where to write the CSV")
    return customer


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise UsageError(f"--limit must be at least 1, got {args.limit}")
    db, _ = open_store(args)
    rows = search_customers(db, args.search, args.limit) if args.search else list_customers(db, args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print_table(("ID", "NAME", "COMPANY", "PHONES", "SEGMENT", "TAGS"),
                [[str(r["id"]), r["name"] or "-", r["company"], ", ".join(display(p) for p in r["phones"]),
                  r["segment"] + (" (set)" if r["segment_override"] else ""), ", ".join(r["tags"])] for r in rows])
    return 0


def _search(args: argparse.Namespace) -> int:
    args.search = args.query
    return _list(args)


def _import(args: argparse.Namespace) -> int:
    data = args.file.read_bytes()
    db, _ = open_store(args, create=True)
    try:
        report = import_customers(db, data, load_crm_settings(db).region)
    except CrmError as exc:
        raise UsageError(f"{args.file}: {exc}") from None
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"added {report.added}, updated {report.updated}, rejected {len(report.rejected)}")
    for line, reason in report.rejected:
        print(f"  line {line}: {reason}")
    return 1 if report.rejected else 0


def _export(args: argparse.Namespace) -> int:
    db, _ = open_store(args)
    text = export_customers(db)
    if args.file is None:
        sys.stdout.write(text)
    else:
        args.file.write_text(text, encoding="utf-8", newline="")
        print(f"{count_customers(db)} customers written to {args.file}", file=sys.stderr)
    return 0
