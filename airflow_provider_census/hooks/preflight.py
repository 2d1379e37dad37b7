"""The preflight: which calls of the DAGs this connection's Census serves, read-only, before the day.

Census switches API v1 off on 2027-01-15, and V2's reference (a Public Preview) documents only
part of what v1 had. The preflight tries, once each, every route the provider's tasks use,
without triggering or canceling anything: the token, host, API version and group first, then
for each named or selected sync its own read, its run list, and its newest run by each way a
run is read. Each check says what it is for, what it found, and what to do. The core flow
(trigger, wait, cancel) is ready when the connection works and a run can be read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_census.api import endpoints as ep
from airflow_provider_census.api.errors import CensusError, CensusNotFoundError
from airflow_provider_census.api.inputs import PageQuery, census_id
from airflow_provider_census.api.retry import ONE_TRY
from airflow_provider_census.api.run_read import BY_ID, BY_STATUS, FROM_SYNC_LIST, RunRoute
from airflow_provider_census.api.settings import V2, ClientSettings

if TYPE_CHECKING:
    from airflow_provider_census.api.endpoints import Endpoint
    from airflow_provider_census.api.models import SyncRun
    from airflow_provider_census.api.sync_client import CensusClient
    from airflow_provider_census.selectors import SelectionInput

OK, FALLBACK, MISSING, FAILED, NOT_TRIED = "ok", "fallback", "missing", "failed", "not tried"
TIMEOUT_SECONDS = 10.0
ONE_ITEM = PageQuery(1, 1, "desc")


@dataclass(frozen=True)
class Check:
    """One call the DAGs make: what for, the route tried, what came of it, and what to do.

    ``core`` marks the checks that trigger, wait and cancel cannot do without.
    """

    call: str
    route: str
    result: str
    advice: str = ""
    core: bool = False
    detail: str = ""
    """The whole error, where the advice is its first sentence (the connection test shows it)."""

    @property
    def sentence(self) -> str:
        return f"{self.call}: {self.result}" + (f" ({self.advice})" if self.advice else "")

    @property
    def broken(self) -> bool:
        return self.core and self.result in (FAILED, MISSING)


@dataclass(frozen=True)
class PreflightReport:
    """Every check of one connection, and whether the core flow can work on it."""

    origin: str
    base_url: str
    api_version: str
    checks: list[Check] = field(default_factory=list)

    @property
    def core_flow_ready(self) -> bool:
        return not any(check.broken for check in self.checks)

    def table(self) -> str:
        """The checks as a Markdown table, with a verdict line under it."""
        rows = [("call", "route", "result", "what to do")]
        rows += [(check.call, f"`{check.route}`", check.result, check.advice) for check in self.checks]
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|---|---|---|---|")
        if not self.core_flow_ready:
            verdict = "the core flow (trigger, wait, cancel) can NOT work: see the failed core checks above"
        elif any(check.result == NOT_TRIED and check.route == "-" for check in self.checks):
            verdict = "the connection works; reading runs was not checked (no run known: pass --run ID)"
        else:
            verdict = "the core flow (trigger, wait, cancel) can work"
        head = f"{self.origin}: Census API {self.api_version} at {self.base_url}"
        return "\n".join([head, "", *lines, "", f"Verdict: {verdict}."])


class PreflightHook(Protocol):
    """What the preflight asks of the hook: its settings, and how it resolves a selection."""

    @property
    def settings(self) -> ClientSettings: ...

    def select_syncs(
        self, select: SelectionInput, exclude: SelectionInput | None = ..., *, on_no_match: str = ...
    ) -> Sequence[Any]: ...


class Preflight:
    """Runs the checks with one try each and a short timeout: a user is waiting for the answer."""

    def __init__(self, hook: PreflightHook) -> None:
        self.hook = hook
        self.settings: ClientSettings = replace(
            hook.settings, timeout=TIMEOUT_SECONDS, connect_timeout=TIMEOUT_SECONDS, retry=ONE_TRY
        )
        self.v2 = self.settings.api_version == V2

    def report(
        self,
        sync_ids: Sequence[int | str] = (),
        select: SelectionInput | None = None,
        run_ids: Sequence[int | str] = (),
    ) -> PreflightReport:
        from airflow_provider_census.api.sync_client import CensusClient

        report = PreflightReport(self.settings.token_origin, self.settings.base_url, self.settings.api_version)
        with CensusClient(self.settings) as client:
            report.checks.extend(self.connection_checks(client))
            if report.checks[0].result != OK:
                return report
            syncs = [census_id(sync_id, "sync_id") for sync_id in sync_ids]
            if select is not None:
                syncs += self._selected(select, report.checks)
            runs = [census_id(run_id, "run_id") for run_id in run_ids]
            for sync_id in dict.fromkeys(syncs):
                report.checks.extend(self.sync_checks(client, sync_id, runs))
        return report

    def connection_checks(self, client: CensusClient) -> list[Check]:
        """What needs no sync: the token, host, version and group; the list of syncs selectors read."""
        proof = ep.LIST_ACTIVATIONS if self.v2 else ep.LIST_SYNCS
        first = self._try(client, "token, host, API version, group", proof, core=True, params=ONE_ITEM.params())
        if first.result != OK:
            return [first]
        syncs = self._try(
            client,
            "list syncs (selectors such as label:crm_*)",
            ep.LIST_SYNCS,
            params=ONE_ITEM.params(),
            missing="selectors cannot work here: name syncs by id",
        )
        return [replace(first, advice="the connection works"), syncs]

    def sync_checks(self, client: CensusClient, sync_id: int, run_ids: Sequence[int]) -> list[Check]:
        """For one sync: read it, list its runs, read its newest run (or the given runs) every way a run is read."""
        checks = [
            self._try(
                client,
                f"read sync {sync_id} (lineage, selection details)",
                ep.GET_SYNC,
                sync_id=sync_id,
                missing="OpenLineage and selection details leave this sync's configuration out",
            )
        ]
        newest: list[SyncRun] = []
        listing = self._try(
            client,
            f"list the runs of sync {sync_id} (never-twice look, reattach, on_skipped='wait')",
            ep.LIST_SYNC_RUNS,
            sync_id=sync_id,
            params=ONE_ITEM.params(),
            keep=newest.extend,
            missing="triggers are sent once without the look; a lost answer is not resent (see the docs)",
        )
        checks.append(listing)
        targets = list(run_ids) or [run.id for run in newest]
        if not targets:
            checks.append(
                Check(f"read a run of sync {sync_id} (every wait)", "-", NOT_TRIED, "no run known: pass --run ID")
            )
        for run_id in targets:
            checks.extend(self.run_read_checks(client, sync_id, run_id))
        trigger_advice = "never sent by the preflight; documented on V2" if self.v2 else "never sent by the preflight"
        checks.append(Check(f"trigger sync {sync_id}", ep.TRIGGER_SYNC.route, NOT_TRIED, trigger_advice))
        return checks

    def run_read_checks(self, client: CensusClient, sync_id: int, run_id: int) -> list[Check]:
        """Each way a run is read, tried on its own, and which one the waits will use."""
        ways = (BY_ID, FROM_SYNC_LIST, BY_STATUS) if self.v2 else (BY_ID,)
        checks = [self._read_by(client, way, sync_id, run_id) for way in ways]
        working = next((check for check in checks if check.result == OK), None)
        if working is None:
            verdict = Check(
                f"read run {run_id} (every wait)", "-", FAILED, "no route reads this run: check its id", core=True
            )
        elif working is checks[0]:
            verdict = Check(f"read run {run_id} (every wait)", working.route, OK, "every field", core=True)
        else:
            verdict = Check(
                f"read run {run_id} (every wait)", working.route, FALLBACK, _fallback_advice(working), core=True
            )
        return [*checks, verdict]

    def _read_by(self, client: CensusClient, way: RunRoute, sync_id: int, run_id: int) -> Check:
        call = f"read run {run_id} by {way.endpoint.route}"
        try:
            found = way.pick(client.run(way.request(self.settings, run_id, sync_id)), run_id, sync_id)
        except CensusNotFoundError as exc:
            return Check(call, way.endpoint.route, MISSING, _missing_advice(exc))
        except CensusError as exc:
            return Check(call, way.endpoint.route, FAILED, _first_sentence(exc))
        if found is None:
            return Check(call, way.endpoint.route, NOT_TRIED, "the run is not on the newest page of the list")
        return Check(call, way.endpoint.route, OK, "")

    def _selected(self, select: SelectionInput, checks: list[Check]) -> list[int]:
        try:
            return [sync.id for sync in self.hook.select_syncs(select, on_no_match="empty")]
        except CensusError as exc:
            checks.append(Check(f"select {select!r}", ep.LIST_SYNCS.route, FAILED, _first_sentence(exc)))
            return []

    def _try(
        self,
        client: CensusClient,
        call: str,
        endpoint: Endpoint[Any],
        *,
        core: bool = False,
        missing: str = "",
        keep: Callable[[Any], Any] | None = None,
        params: Any = None,
        sync_id: int | None = None,
    ) -> Check:
        path: dict[str, Any] = {} if sync_id is None else {"sync_id": sync_id}
        try:
            answer = client.run(endpoint.bind(self.settings, params=params, **path))
        except CensusNotFoundError as exc:
            advice = missing if exc.assumed_route and missing else _first_sentence(exc)
            return Check(call, endpoint.route, MISSING if exc.assumed_route else FAILED, advice, core, str(exc))
        except CensusError as exc:
            return Check(call, endpoint.route, FAILED, _first_sentence(exc), core, str(exc))
        if keep is not None:
            keep(answer.items)
        return Check(call, endpoint.route, OK, "", core)


def _fallback_advice(working: Check) -> str:
    if working.route == BY_STATUS.endpoint.route:
        return "waits work; counts and 'canceled' are reported as unknown"
    return "waits work, one extra request per process to find this route"


def _missing_advice(exc: CensusNotFoundError) -> str:
    return "not served by this Census (404)" if exc.assumed_route else _first_sentence(exc)


def _first_sentence(exc: BaseException) -> str:
    """An error's first sentence, enough for a table cell; the token never is in it (the client scrubs)."""
    text = str(exc).replace("|", "/")
    return text.split(". ")[0][:200]
