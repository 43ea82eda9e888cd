"""The tracker's service layer: Track, price book and margin administration, and reconciliation, composed
from the domain (pricing, attribution), the repository and the usage API client. No gRPC here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from services.usage_tracker import metrics
from services.usage_tracker.clients.usage_api import OpenAIUsageApi, UsageApiError, UsageWindows
from services.usage_tracker.domain import decimals
from services.usage_tracker.domain.attribution import ReportedUsage, Window, claim, reported_in
from services.usage_tracker.domain.decimals import EXACT, with_margin
from services.usage_tracker.domain.pricing import (
    MarginChange,
    PriceBook,
    PriceVersion,
    TokenClasses,
    margin_at,
)
from services.usage_tracker.domain.tracking import (
    SOURCE_FALLBACK,
    SOURCE_RECONCILIATION,
    SOURCE_RESPONSE_USAGE,
    SOURCE_USAGE_API,
    Pricing,
    TrackCommand,
    conflicting_field,
    price_fallback,
    price_usage,
)
from services.usage_tracker.storage.group_commit import GroupCommit
from services.usage_tracker.storage.repository import Record, UsageRepository

log = logging.getLogger(__name__)
UTC = dt.UTC
DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
PRICE_BOOK_REFRESH_SECONDS = 30.0  # other replicas may add versions; this bounds how long one lags


@dataclass(frozen=True)
class TrackerConfig:
    default_margin: Decimal
    fallback_prices: dict[str, Decimal]  # used when no price version is in force
    usage_lookup_timeout_seconds: float = 20.0
    # Ledger records without an OpenAI project are reconciled against this project of the usage API.
    default_openai_project_id: str = ""
    # A fallback record is trued up only once its window is at least this old: the usage API settles late.
    reconcile_settle_seconds: float = 3600.0
    # Margins are cached per company this long (a SetCompanyMargin on this replica invalidates at once;
    # other replicas see a change within this time).
    margin_cache_seconds: float = 5.0


@dataclass
class ReconciliationLine:
    openai_project_id: str
    model: str
    ledger_tokens: int = 0
    ledger_base_cost: Decimal = Decimal(0)
    reported_tokens: int = 0
    reported_cost: Decimal = Decimal(0)

    @property
    def token_drift(self) -> int:
        return self.reported_tokens - self.ledger_tokens

    @property
    def cost_drift(self) -> Decimal:
        return EXACT.subtract(self.reported_cost, self.ledger_base_cost)


@dataclass
class ReconciliationReport:
    day: dt.date
    created_at: dt.datetime
    lines: list[ReconciliationLine] = field(default_factory=list)
    adjustments: list[Record] = field(default_factory=list)
    unsettled_records: int = 0
    adjustment_ids: list[str] = field(default_factory=list)  # as stored; `adjustments` only for this run

    @property
    def reported_cost(self) -> Decimal:
        return sum((line.reported_cost for line in self.lines), Decimal(0))

    @property
    def ledger_base_cost(self) -> Decimal:
        return sum((line.ledger_base_cost for line in self.lines), Decimal(0))

    def content(self) -> dict:
        """What the run found, without when it ran or what it wrote: equal content means nothing changed."""
        return {
            "date": self.day.isoformat(),
            "unsettled_records": self.unsettled_records,
            "lines": [
                {
                    "openai_project_id": line.openai_project_id,
                    "model": line.model,
                    "ledger_tokens": line.ledger_tokens,
                    "ledger_base_cost": decimals.canonical(line.ledger_base_cost),
                    "reported_tokens": line.reported_tokens,
                    "reported_cost": decimals.canonical(line.reported_cost),
                }
                for line in self.lines
            ],
        }

    def to_json(self) -> str:
        body = self.content()
        body["adjustment_record_ids"] = [record.record_id for record in self.adjustments]
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, day: dt.date, created_at: dt.datetime, text: str) -> ReconciliationReport:
        """A stored report; tolerant of rows written by other tools (missing keys read as empty)."""
        body = json.loads(text) if text else {}
        body = body if isinstance(body, dict) else {}
        lines = [
            ReconciliationLine(
                line.get("openai_project_id", ""),
                line.get("model", ""),
                int(line.get("ledger_tokens", 0)),
                Decimal(line.get("ledger_base_cost", "0")),
                int(line.get("reported_tokens", 0)),
                Decimal(line.get("reported_cost", "0")),
            )
            for line in body.get("lines", [])
        ]
        return cls(
            day,
            created_at,
            lines,
            unsettled_records=int(body.get("unsettled_records", 0)),
            adjustment_ids=list(body.get("adjustment_record_ids", [])),
        )


class _Claimants:
    """How many operations of one (window, family, project) this replica is tracking right now: the k of
    the fair-share rule (domain/attribution.py). Registered before the usage lookup, so every operation
    waiting for the same shared answer is counted."""

    def __init__(self) -> None:
        self._counts: dict[tuple, int] = defaultdict(int)
        self._lock = threading.Lock()

    def enter(self, key: tuple) -> None:
        with self._lock:
            self._counts[key] += 1

    def pending(self, key: tuple) -> int:
        with self._lock:
            return self._counts[key]

    def leave(self, key: tuple) -> None:
        with self._lock:
            self._counts[key] -= 1
            if not self._counts[key]:
                del self._counts[key]


class _Claim:
    """One operation's place among the claimants of its (window, family, project); leaves exactly once."""

    def __init__(self, claimants: _Claimants, key: tuple) -> None:
        self.key = key
        self._claimants = claimants
        self._open = True
        claimants.enter(key)

    def pending_then_leave(self) -> int:
        pending = self._claimants.pending(self.key)
        self.leave()
        return pending

    def leave(self) -> None:
        if self._open:
            self._open = False
            self._claimants.leave(self.key)


class Tracker:
    def __init__(
        self,
        repository: UsageRepository,
        config: TrackerConfig,
        usage_windows: UsageWindows | None,
        usage_api: OpenAIUsageApi | None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
        writer: GroupCommit | None = None,
    ) -> None:
        """`writer`: the group commit that writes Track's records (None: one transaction per Track)."""
        self._repository = repository
        self._writer = writer
        self._config = config
        self._windows = usage_windows
        self._api = usage_api
        self._clock = clock
        self._claimants = _Claimants()
        self._book: PriceBook | None = None
        self._book_loaded = 0.0
        self._book_lock = threading.Lock()
        self._margins: dict[str, tuple[float, list[MarginChange]]] = {}
        self._margins_lock = threading.Lock()

    def now(self) -> dt.datetime:
        return self._clock()

    # -- price book ------------------------------------------------------------------------------------
    def price_book(self) -> PriceBook:
        with self._book_lock:
            if self._book is None or time.monotonic() - self._book_loaded > PRICE_BOOK_REFRESH_SECONDS:
                self._book = PriceBook(self._repository.price_versions())
                self._book_loaded = time.monotonic()
            return self._book

    def price_versions(self) -> list[PriceVersion]:
        """Newest effective first."""
        return sorted(self._repository.price_versions(), key=lambda v: v.effective_at, reverse=True)

    def add_price_version(self, version: PriceVersion) -> PriceVersion:
        stored = self._repository.add_price_version(version, self.now())
        with self._book_lock:
            self._book = None
        return stored

    def family_of(self, model: str, at: dt.datetime) -> str | None:
        version = self.price_book().at(at)
        price = version.resolve(model) if version is not None else None
        return price.model if price is not None else None

    # -- margins ---------------------------------------------------------------------------------------
    def margin(self, company_id: str, at: dt.datetime) -> tuple[MarginChange, bool]:
        """The margin in force (and whether it is the default)."""
        change = margin_at(self._margin_changes(company_id), at)
        if change is None:
            return MarginChange(
                company_id, self._config.default_margin, dt.datetime.fromtimestamp(0, UTC)
            ), True
        return change, False

    def _margin_changes(self, company_id: str) -> list[MarginChange]:
        """The company's margin changes, cached for `margin_cache_seconds` (read once per company, not per
        Track)."""
        now = time.monotonic()
        with self._margins_lock:
            cached = self._margins.get(company_id)
        if cached is not None and now - cached[0] < self._config.margin_cache_seconds:
            return cached[1]
        changes = self._repository.margin_changes(company_id)
        with self._margins_lock:
            if len(self._margins) > 100_000:  # bounded: many companies only cost re-reads
                self._margins.clear()
            self._margins[company_id] = (now, changes)
        return changes

    def set_margin(self, change: MarginChange) -> MarginChange:
        self._repository.set_margin(change, self.now())
        with self._margins_lock:
            self._margins.pop(change.company_id, None)
        return change

    def margins(self, company_id: str) -> list[MarginChange]:
        return self._repository.margin_changes(company_id)

    # -- track -----------------------------------------------------------------------------------------
    def track(self, command: TrackCommand, slot: _Claim | None = None) -> tuple[Record, bool]:
        """(record, duplicate). The record is committed before this returns. `slot`: a claimant place
        taken in advance (TrackBatch takes all of a batch's places first, so its operations share fairly)."""
        slot = slot if slot is not None else self._claim_slot(command)
        try:
            return self._track(command, slot)
        finally:
            if slot is not None:
                slot.leave()

    def _claim_slot(self, command: TrackCommand) -> _Claim | None:
        """A place among the claimants of the operation's usage-API window, when it will look one up."""
        if command.usage is not None or self._windows is None:
            return None
        family = self.family_of(command.model, command.completed_at)
        if family is None:
            return None
        window = Window.covering(command.started_at, command.completed_at)
        return _Claim(self._claimants, (window, family, command.openai_project_id))

    def _track(self, command: TrackCommand, slot: _Claim | None) -> tuple[Record, bool]:
        payload_hash = command.payload_hash()
        version = self.price_book().at(command.completed_at)
        margin = self.margin(command.company_id, command.completed_at)[0].margin

        def record_for(pricing: Pricing) -> Record:
            return self._record(command, pricing, margin, payload_hash)

        if command.usage is not None:
            record, inserted = self._append(record_for(self._price_with_usage(command, version)))
        elif version is None or slot is None:
            if self._windows is None:
                reason = "usage API not configured (OPENAI_ADMIN_KEY unset)"
            else:
                reason = f"model {command.model} is not in the price book"
            record, inserted = self._append(record_for(self._fallback(version, command, reason)))
        else:
            # A retry must not wait for (or spend) a usage-API lookup: look for the stored record first.
            existing = self._repository.find(command.operation_id)
            if existing is not None:
                return self._duplicate(command, payload_hash, existing)
            record, inserted = self._track_from_usage_api(command, version, slot, record_for)
        if not inserted:
            return self._duplicate(command, payload_hash, record)
        metrics.RECORDS.labels(record.source, "record").inc()
        return record, False

    def _append(self, record: Record) -> tuple[Record, bool]:
        """Durable before it returns: through the group commit when there is one. A duplicate operation_id
        comes back as (the stored record, False) without a lookup before the insert."""
        if self._writer is not None:
            return self._writer.append(record)
        return self._repository.append(record)

    def _track_from_usage_api(
        self,
        command: TrackCommand,
        version: PriceVersion,
        slot: _Claim,
        record_for: Callable[[Pricing], Record],
    ) -> tuple[Record, bool]:
        window, family, project = slot.key
        try:
            results = self._windows.lookup(
                window, command.completed_at, self._config.usage_lookup_timeout_seconds
            )
        except UsageApiError as error:
            return self._repository.append(record_for(self._fallback(version, command, str(error))))
        reported = reported_in(
            results, window, family, lambda model: self.family_of(model, command.completed_at), project
        )

        def build(held: TokenClasses) -> Record:
            # Runs serialised with every other claimant: count, then leave, so the last one to build for
            # this key sees 1 and takes whatever its fellows left.
            tokens = claim(reported, held, slot.pending_then_leave())
            if not tokens.total():
                reason = "usage API reports no unattributed tokens for the window"
                return record_for(self._fallback(version, command, reason))
            priced = price_usage(version, command.model, tokens.usage(), SOURCE_USAGE_API)
            if isinstance(priced, str):
                return record_for(self._fallback(version, command, priced))
            return record_for(priced)

        return self._repository.append_attributed(command.operation_id, window, family, project, build)

    def _price_with_usage(self, command: TrackCommand, version: PriceVersion | None) -> Pricing:
        if version is None:
            return self._fallback(None, command, "no price version in force at completed_time")
        priced = price_usage(version, command.model, command.usage, SOURCE_RESPONSE_USAGE)
        return priced if isinstance(priced, Pricing) else self._fallback(version, command, priced)

    def _fallback(self, version: PriceVersion | None, command: TrackCommand, reason: str) -> Pricing:
        return price_fallback(version, self._config.fallback_prices, command, reason)

    def _record(self, command: TrackCommand, pricing: Pricing, margin: Decimal, payload_hash: str) -> Record:
        return Record(
            record_id=uuid.uuid4().hex,
            operation_id=command.operation_id,
            kind="record",
            adjusts_record_id=None,
            category=command.category,
            company_id=command.company_id,
            job_id=command.job_id,
            candidate_id=command.candidate_id,
            model=command.model,
            priced_model=pricing.priced_model,
            openai_project_id=command.openai_project_id,
            usage=pricing.usage,
            quantity=command.quantity,
            unit=command.unit,
            base_cost=pricing.base_cost,
            margin=margin,
            cost=with_margin(pricing.base_cost, margin),
            source=pricing.source,
            price_version=pricing.price_version,
            fallback_reason=pricing.fallback_reason,
            payload_hash=payload_hash,
            started_at=command.started_at,
            completed_at=command.completed_at,
            created_at=self.now(),
        )

    @staticmethod
    def _duplicate(command: TrackCommand, payload_hash: str, existing: Record) -> tuple[Record, bool]:
        if existing.payload_hash != payload_hash or existing.kind != "record":
            field = conflicting_field(command, existing.as_stored())
            raise AlreadyExists(
                f"operation_id {command.operation_id} was already tracked with a different {field}"
            )
        metrics.DUPLICATES.inc()
        return existing, True

    def track_batch(self, commands: Sequence[TrackCommand]) -> list[tuple[Record, bool]]:
        """Each operation tracked with Track's rules, answered in order; commands are validated already.

        Operations that carry usage are priced in memory and written together in one transaction (their
        rollups summed per bucket first); operations without usage go one by one through the usage-API
        path, having all taken their claimant places up front so they share their windows fairly."""
        first: dict[str, int] = {}
        for index, command in enumerate(commands):
            if command.operation_id in first:
                earlier = commands[first[command.operation_id]]
                if earlier.payload_hash() != command.payload_hash():
                    raise InvalidArgument(
                        f"requests[{index}].operation_id repeats requests[{first[command.operation_id]}]"
                        ".operation_id with a different payload"
                    )
            else:
                first[command.operation_id] = index
        results: dict[str, tuple[Record, bool]] = {}
        self._track_with_usage_in_bulk(
            [c for i, c in enumerate(commands) if first[c.operation_id] == i and c.usage is not None], results
        )
        without_usage = [c for i, c in enumerate(commands) if first[c.operation_id] == i and c.usage is None]
        slots = [self._claim_slot(command) for command in without_usage]
        try:
            for command, slot in zip(without_usage, slots, strict=True):
                results[command.operation_id] = self.track(command, slot)
        finally:
            for slot in slots:
                if slot is not None:
                    slot.leave()
        answers = []
        for index, command in enumerate(commands):
            record, duplicate = results[command.operation_id]
            answers.append((record, duplicate or first[command.operation_id] != index))
        return answers

    def _track_with_usage_in_bulk(self, commands: list[TrackCommand], results: dict) -> None:
        """Priced in memory (price book and margins read once), written in one transaction with
        INSERT ... ON CONFLICT DO NOTHING RETURNING; operations already stored come back as duplicates."""
        if not commands:
            return
        book = self.price_book()
        margins: dict[str, list[MarginChange]] = {}  # one read per company, not per operation
        fresh: list[Record] = []
        for command in commands:
            if command.company_id not in margins:
                margins[command.company_id] = self._margin_changes(command.company_id)
            change = margin_at(margins[command.company_id], command.completed_at)
            margin = change.margin if change is not None else self._config.default_margin
            pricing = self._price_with_usage(command, book.at(command.completed_at))
            fresh.append(self._record(command, pricing, margin, command.payload_hash()))
        for command, record, (stored, inserted) in zip(
            commands, fresh, self._repository.append_group(fresh), strict=True
        ):
            if inserted:
                metrics.RECORDS.labels(record.source, "record").inc()
                results[command.operation_id] = (record, False)
            else:
                results[command.operation_id] = self._duplicate(command, record.payload_hash, stored)

    # -- reconciliation --------------------------------------------------------------------------------
    def reconcile(self, day: dt.date, dry_run: bool = False) -> ReconciliationReport:
        now = self.now()
        if day > now.date():
            raise InvalidArgument(f"date {day.isoformat()} is in the future")
        if self._api is None:
            raise FailedPrecondition("reconciliation needs the usage API: set OPENAI_ADMIN_KEY")
        start = dt.datetime.combine(day, dt.time(), UTC)
        end = start + DAY
        query_end = min(end, now.replace(microsecond=0) + dt.timedelta(seconds=1))
        try:
            usage = self._api.usage(start, query_end, "1h")
            costs = self._api.costs(start, query_end)
        except UsageApiError as error:
            raise FailedPrecondition(f"cannot reconcile {day.isoformat()}: {error}") from None

        family_at = end - dt.timedelta(microseconds=1)
        records = self._repository.records_completed_between(start, end)
        adjustments = self._true_up(day, records, now, dry_run)
        if not dry_run:
            records = self._repository.records_completed_between(start, end)
        else:
            records = [*records, *adjustments]

        lines: dict[tuple[str, str], ReconciliationLine] = {}

        def line(project: str, model: str) -> ReconciliationLine:
            key = (project, self.family_of(model, family_at) or model)
            return lines.setdefault(key, ReconciliationLine(*key))

        for record in records:
            entry = line(
                record.openai_project_id or self._config.default_openai_project_id,
                record.priced_model or record.model,
            )
            entry.ledger_tokens += record.usage.input_tokens + record.usage.output_tokens
            entry.ledger_base_cost = EXACT.add(entry.ledger_base_cost, record.base_cost)
        for result in usage:
            entry = line(result.project_id, result.model)
            entry.reported_tokens += result.tokens.usage().input_tokens + result.tokens.usage().output_tokens
        for project, line_item, amount in costs:
            # Line items read "<model>, <token class>": the model part puts the dollars on the model's line.
            entry = line(project, line_item.split(",", 1)[0].strip())
            entry.reported_cost = EXACT.add(entry.reported_cost, amount)

        adjusted = {record.adjusts_record_id for record in records if record.kind == "adjustment"}
        unsettled = sum(
            1
            for record in records
            if record.kind == "record"
            and record.source == SOURCE_FALLBACK
            and record.record_id not in adjusted
        )
        report = ReconciliationReport(
            day,
            now,
            sorted(lines.values(), key=lambda entry: (entry.openai_project_id, entry.model)),
            adjustments,
            unsettled,
        )
        if not dry_run:
            latest = self._repository.latest_report(day)
            unchanged = (
                latest is not None
                and ReconciliationReport.from_json(day, now, latest).content() == report.content()
            )
            if adjustments or not unchanged:
                self._repository.save_report(day, now, report.to_json())
        return report

    def _true_up(self, day: dt.date, records: list[Record], now: dt.datetime, dry_run: bool) -> list[Record]:
        """Adjustments for the day's provisional (fallback) records whose windows have settled usage.

        Records of the same (window, price family, project) share that window's unattributed remainder the
        way tracking shares it (domain/attribution.py, rule 4): the first of k provisional records takes
        1/k of what is left, the next 1/(k-1) of what is then left, the last the rest, each claim under the
        attribution lock with the held tokens re-read. Together they are billed exactly the priced
        remainder, never more than the API reports; adjusted records hold their tokens, so a re-run
        finds nothing left to write."""
        adjusted = {record.adjusts_record_id for record in records if record.kind == "adjustment"}
        settled_before = now - dt.timedelta(seconds=self._config.reconcile_settle_seconds)
        blocks: dict[dt.datetime, list[ReportedUsage]] = {}
        groups: dict[tuple, list[tuple[Record, PriceVersion]]] = {}
        for record in records:
            if (
                record.kind != "record"
                or record.source != SOURCE_FALLBACK
                or record.record_id in adjusted
                or record.completed_at > settled_before
            ):
                continue
            version = self._version_for(record)
            price = version.resolve(record.model) if version is not None else None
            if price is None:
                continue  # an unknown model cannot be trued up from tokens; it stays provisional
            window = Window.covering(record.started_at, record.completed_at)
            groups.setdefault((window, price.model, record.openai_project_id), []).append((record, version))

        written: list[Record] = []
        for (window, family, project), members in groups.items():
            results = self._window_usage(window, blocks, now)
            if results is None:
                continue
            # Dry runs write nothing, so what earlier members of the group would hold is counted here.
            pending_held = TokenClasses()
            for position, (record, version) in enumerate(members):
                reported = reported_in(results, window, family, _family_in(version), project)
                claimants = len(members) - position

                def build(
                    held: TokenClasses,
                    record=record,
                    version=version,
                    reported=reported,
                    claimants=claimants,
                ) -> Record | None:
                    tokens = claim(reported, held, claimants)
                    if not tokens.total():
                        return None
                    priced = price_usage(version, record.model, tokens.usage(), SOURCE_RECONCILIATION)
                    if isinstance(priced, str):
                        return None
                    return self._adjustment(day, record, priced, now)

                if dry_run:
                    held = self._repository.held_tokens(window, family, project).plus(pending_held)
                    adjustment = build(held)
                    if adjustment is not None:
                        pending_held = pending_held.plus(adjustment.usage.classes())
                else:
                    adjustment, _ = self._repository.append_attributed(
                        f"adj:{day.isoformat()}:{record.record_id}", window, family, project, build
                    )
                if adjustment is not None:
                    written.append(adjustment)
                    if not dry_run:
                        metrics.RECORDS.labels(SOURCE_RECONCILIATION, "adjustment").inc()
        return written

    def _version_for(self, record: Record) -> PriceVersion | None:
        book = self.price_book()
        by_name = {version.version: version for version in book.versions}
        return by_name.get(record.price_version) or book.at(record.completed_at)

    def _window_usage(
        self, window: Window, blocks: dict[dt.datetime, list[ReportedUsage]], now: dt.datetime
    ) -> list[ReportedUsage] | None:
        """One-minute usage of a window, fetched once per UTC hour for the whole run; None if unavailable."""
        results: list[ReportedUsage] = []
        block = window.start.replace(minute=0)
        while block < window.end:
            if block not in blocks:
                end = min(block + HOUR, now.replace(microsecond=0) + dt.timedelta(seconds=1))
                try:
                    blocks[block] = self._api.usage(block, end, "1m")
                except UsageApiError as error:
                    log.warning(
                        "reconciliation could not read usage",
                        extra={"block": block.isoformat(), "error": str(error)},
                    )
                    return None
            results.extend(r for r in blocks[block] if window.start <= r.minute < window.end)
            block += HOUR
        return results

    def _adjustment(self, day: dt.date, record: Record, priced: Pricing, now: dt.datetime) -> Record:
        operation_id = f"adj:{day.isoformat()}:{record.record_id}"
        delta = EXACT.subtract(priced.base_cost, record.base_cost)
        return Record(
            record_id=uuid.uuid4().hex,
            operation_id=operation_id,
            kind="adjustment",
            adjusts_record_id=record.record_id,
            category=record.category,
            company_id=record.company_id,
            job_id=record.job_id,
            candidate_id=record.candidate_id,
            model=record.model,
            priced_model=priced.priced_model,
            openai_project_id=record.openai_project_id,
            usage=priced.usage,
            quantity=Decimal(0),
            unit=record.unit,
            base_cost=delta,
            margin=record.margin,
            cost=with_margin(delta, record.margin),
            source=SOURCE_RECONCILIATION,
            price_version=priced.price_version,
            fallback_reason="",
            payload_hash=hashlib.sha256(operation_id.encode()).hexdigest(),
            started_at=record.started_at,
            completed_at=record.completed_at,
            created_at=now,
        )

    def reports(self, offset: int, limit: int) -> list[ReconciliationReport]:
        """Stored reports, newest day first, with the adjustment records each run wrote."""
        reports = [
            ReconciliationReport.from_json(day, created_at, text)
            for day, created_at, text in self._repository.list_reports(offset, limit)
        ]
        for report in reports:
            report.adjustments = self._repository.find_records(report.adjustment_ids)
        return reports


def _family_in(version: PriceVersion) -> Callable[[str], str | None]:
    def family(model: str) -> str | None:
        price = version.resolve(model)
        return price.model if price is not None else None

    return family
