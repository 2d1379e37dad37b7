"""A request that got no answer, worded for the user: what went wrong at the bottom, in one line.

Both transports end here when no answer came (``requests`` for tasks, ``aiohttp`` for
triggers): the error says whether Census was reached at all, which decides whether a trigger
may be resent (:mod:`.retry`), and names the root cause without the URL's query or headers. A
failure that a wrong host would cause carries the same hint as a 401 or a 404 on that host
(:func:`~.wire.wrong_host_hint`).
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator
from typing import Any

from airflow_provider_census.api.endpoints import Request
from airflow_provider_census.api.errors import CensusTransportError
from airflow_provider_census.api.settings import ClientSettings
from airflow_provider_census.api.wire import EXCERPT_CHARS, wrong_host_hint


def transport_error(
    settings: ClientSettings, request: Request[Any], cause: BaseException, *, reached_census: bool
) -> CensusTransportError:
    """A failure to get any answer, worded for the user; never includes the URL's query or headers."""
    kind = "could not connect" if not reached_census else "got no answer"
    wrong_host = not reached_census or _is_tls_failure(cause)
    return CensusTransportError(
        f"Census {kind} for {request.label} ({reason_of(cause)}). Check that the "
        "connection's region or base_url is right and reachable from here; a passing network fault goes away "
        f"when the task is retried.{wrong_host_hint(settings, 'unreachable') if wrong_host else ''}",
        reached_census=reached_census,
    )


def _is_tls_failure(exc: BaseException) -> bool:
    """A TLS handshake that failed: a certificate for another name is how a wrong host shows."""
    return any(isinstance(seen, ssl.SSLError | ssl.CertificateError) for seen in causes(exc))


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*|\b\w+\(host='[^']*', port=\d+\):\s*")
_URL_QUERY = re.compile(r"(\S)\?\S*?(?=[\s)'\"]|$)")
_CAUSE_DEPTH = 8


def reason_of(exc: BaseException) -> str:
    """What went wrong at the bottom of a transport failure, in one short line: the classes and words.

    HTTP libraries wrap the real cause (a name that did not resolve, a refused or timed-out
    connection) in layers whose text repeats the URL with its query: the outermost class
    (``ReadTimeout``) and the innermost cause say it plainly. Object addresses, connection
    reprs and query strings are dropped, and a long text is cut at a word, so a connection
    test's message reads whole in the UI.
    """
    root = _innermost_cause(exc)
    names = type(exc).__name__ if root is exc else f"{type(exc).__name__}: {type(root).__name__}"
    text = _URL_QUERY.sub(r"\1", _OBJECT_REPR.sub("", " ".join(str(root).split())))
    return f"{names}: {_cut_at_word(text, EXCERPT_CHARS)}" if text else names


def _innermost_cause(exc: BaseException) -> BaseException:
    *_, innermost = causes(exc)
    return innermost


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it wraps, outermost first: ``reason`` (urllib3), a wrapped first
    argument (requests), ``__cause__`` and ``__context__``."""
    seen = exc
    yield seen
    for _ in range(_CAUSE_DEPTH):
        reason = getattr(seen, "reason", None)
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        deeper = reason if isinstance(reason, BaseException) else nested or seen.__cause__ or seen.__context__
        if deeper is None or deeper is seen:
            return
        seen = deeper
        yield seen


def _cut_at_word(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return f"{cut} …"
