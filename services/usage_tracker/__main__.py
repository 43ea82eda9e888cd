"""`python -m services.usage_tracker [serve]`: serve the UsageTracker gRPC service (the default).

Administration and jobs, against the same database and settings (output is JSON on stdout):
  reconcile --date YYYY-MM-DD [--dry-run]     compare a UTC day with OpenAI's usage and costs APIs
  prices list                                 the price book, newest version first
  prices add --file FILE                      add the version(s) of a price book file (domain/price_admin.py)
  margin get --company-id ID [--at TIME]      the margin in force (RFC 3339 TIME, default now)
  margin set --company-id ID --margin 0.3 [--effective TIME]
  margin list --company-id ID
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from google.protobuf.json_format import MessageToDict

from services.common import logs
from services.common.config import ConfigError, Env
from services.common.entrypoint import run_service
from services.common.errors import DomainError, InvalidArgument
from services.usage_tracker.bootstrap import build_tracker, start
from services.usage_tracker.config import Settings
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.price_admin import versions_from_json
from services.usage_tracker.domain.pricing import MarginChange, margin_problem
from services.usage_tracker.servicer import _margin_message, price_version_message, report_message


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.usage_tracker", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve gRPC (the default)")
    reconcile = commands.add_parser("reconcile", help="reconcile one UTC day")
    reconcile.add_argument("--date", required=True, type=dt.date.fromisoformat, help="YYYY-MM-DD")
    reconcile.add_argument("--dry-run", action="store_true", help="report only; store and write nothing")
    prices = commands.add_parser("prices", help="the price book").add_subparsers(dest="action", required=True)
    prices.add_parser("list")
    add = prices.add_parser("add")
    add.add_argument("--file", required=True, type=Path)
    margin = commands.add_parser("margin", help="per-company margins").add_subparsers(
        dest="action", required=True
    )
    get = margin.add_parser("get")
    get.add_argument("--company-id", required=True)
    get.add_argument("--at", type=_time, help="RFC 3339 time, default now")
    set_ = margin.add_parser("set")
    set_.add_argument("--company-id", required=True)
    set_.add_argument("--margin", required=True, help="decimal fraction, 0.25 is 25%%")
    set_.add_argument("--effective", type=_time, help="RFC 3339 time, default now")
    listing = margin.add_parser("list")
    listing.add_argument("--company-id", required=True)
    return parser


def _time(raw: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError("time must carry a zone, e.g. 2026-01-01T00:00:00Z")
    return when.astimezone(dt.UTC)


def _print(message) -> None:
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2))


def run_job(args: argparse.Namespace, settings: Settings) -> None:
    tracker, engine, _ = build_tracker(settings)
    try:
        now = tracker.now()
        if args.command == "reconcile":
            _print(report_message(tracker.reconcile(args.date, args.dry_run)))
        elif args.command == "prices" and args.action == "list":
            for version in tracker.price_versions():
                _print(price_version_message(version))
        elif args.command == "prices":
            for version in versions_from_json(args.file.read_text()):
                _print(price_version_message(tracker.add_price_version(version)))
        elif args.action == "get":
            _print(_margin_message(tracker.margin(args.company_id, args.at or now)[0]))
        elif args.action == "set":
            try:
                margin = decimals.parse(args.margin, "--margin")
            except ValueError as error:
                raise InvalidArgument(str(error)) from None
            if problem := margin_problem(margin):
                raise InvalidArgument(f"--margin {problem}")
            _print(
                _margin_message(
                    tracker.set_margin(MarginChange(args.company_id, margin, args.effective or now))
                )
            )
        else:
            for change in tracker.margins(args.company_id):
                _print(_margin_message(change))
    finally:
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command in (None, "serve"):
        run_service("usage_tracker", Settings.from_env, start)
        return
    env = Env()
    logs.configure("usage_tracker", env.str("HIREMETER_LOG_LEVEL", "WARNING"))
    try:
        settings = Settings.from_env(env, serving=False)
    except ConfigError as error:
        print(f"usage_tracker: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        run_job(args, settings)
    except DomainError as error:
        print(f"usage_tracker: {error.message}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
