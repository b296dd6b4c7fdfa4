"""What the notifier does on a timer (`RESYNC_SECONDS`), and at once when the broker
connection comes back: end the subscriptions whose credential has ended since
(sign-out, expiry), then catch every socket up from the stored history (`Hub.resync`)
and have every watched batch read again (`BatchHub.resync`).

A subscribe checks the token once; without this, a signed-out session would go on
receiving job views with fresh download links for as long as the socket stays open.
Both steps cost nothing while no socket watches anything.
"""

import asyncio
import contextlib
import logging

from pymongo.errors import PyMongoError

from common.auth import token_version
from common.tokens import InvalidToken
from notifier.hub import ConnectionGone, Grant, batches
from notifier.protocol import Error
from notifier.ws import REVOKED, Session

log = logging.getLogger(__name__)


async def maintain(session: Session, wake: asyncio.Event) -> None:
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), session.settings.resync_seconds)
        woken = wake.is_set()  # the broker is back: events may be lost for any job
        wake.clear()
        try:
            await end_lapsed_grants(session)
            session.batches.resync()
            await session.hub.resync(everything=woken)
        except PyMongoError as e:
            log.warning("resync skipped, the database did not answer: %s", e)
        except Exception:  # the loop must outlive any one bad pass
            log.exception("resync failed")


async def end_lapsed_grants(session: Session) -> None:
    """Unsubscribe every job whose grant no longer holds, with the `invalid_token` error a
    new subscribe with that token would get: sessions signed out or expired, job tokens
    expired or revoked by the job's owner (one query per batch of each; revocations of
    at most RESYNC_MAX_JOBS jobs a pass, so with more a revocation may take a few passes)."""
    conns = session.hub.connections() | session.batches.connections()
    session_ids = list(
        {
            sid
            for conn in conns
            for grant in [*conn.grants.values(), *conn.batches.values()]
            if (sid := grant.principal.session_id) is not None
        }
    )
    live: set[str] = set()
    for batch in batches(session_ids):
        live |= await session.sessions.live(batch)
    # Job tokens: the job's current token version (the owner may have revoked them), for
    # at most RESYNC_MAX_JOBS jobs a pass, those read longest ago: at 10,000 sockets on job
    # tokens, reading them all was 400 queries every pass, more than the events' reads.
    shared = longest_unchecked(
        session.token_checks,
        {job_id for conn in conns for job_id, g in conn.grants.items() if g.principal.job_id},
        session.settings.resync_max_jobs,
    )
    versions: dict[str, int] = {}
    for batch in batches(shared):
        found = session.hub.repo.jobs.find({"_id": {"$in": batch}}, {"token_version": 1})
        versions |= {job["_id"]: token_version(job) async for job in found}
    for conn in conns:
        for job_id, grant in list(conn.grants.items()):
            reason = _lapsed(session, grant, live, versions)
            if reason is None:
                continue
            session.hub.unsubscribe(conn, job_id)  # before the error: no job data after it
            with contextlib.suppress(ConnectionGone):  # the socket's own loop cleans up
                await conn.send(Error(code="invalid_token", message=reason, job_id=job_id))
        for batch_id, grant in list(conn.batches.items()):
            reason = _lapsed(session, grant, live, versions)
            if reason is None:
                continue
            session.batches.unsubscribe(conn, batch_id)
            with contextlib.suppress(ConnectionGone):
                await conn.send(Error(code="invalid_token", message=reason, batch_id=batch_id))


def longest_unchecked(checked: dict[str, None], ids: set[str], limit: int) -> list[str]:
    """At most `limit` of `ids`: those never checked, then those checked longest ago.
    `checked` holds the order of checks (oldest first) and is brought up to date."""
    for gone in [job_id for job_id in checked if job_id not in ids]:
        del checked[gone]
    due = ([job_id for job_id in ids if job_id not in checked] + list(checked))[:limit]
    for job_id in due:
        checked.pop(job_id, None)
        checked[job_id] = None  # last in the order of checks
    return due


def _lapsed(session: Session, grant: Grant, live: set[str], versions: dict[str, int]) -> str | None:
    """Why the grant no longer holds, or None while it does."""
    principal = grant.principal
    if principal.session_id is not None:
        if principal.session_id in live:
            return None
        return "the session has ended; sign in again"
    try:
        session.signer.job_from_token(grant.token)
    except InvalidToken as e:
        return str(e)
    if principal.job_id in versions and versions[principal.job_id] != principal.token_version:
        return REVOKED
    return None
