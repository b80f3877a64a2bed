"""A RemoteStopTransaction sent right behind the StartTransaction.conf stops that transaction (regression guard:
the race a suite author saw did not reproduce in this ordering; the charger now also waits, bounded, for an id
that is being assigned).

The platform may stop a session the moment it has numbered it; a good charger must not answer
Rejected just because it has not finished processing the answer that carried the id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from harness.drivers.base import EndpointInfo
from harness.drivers.sim import SimBackend
from harness.endpoint import Endpoint
from harness.platform import default_answer
from harness.session import ReceivedCall
from tests.helpers import CHARGER_ID, KEY

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_remote_stop_immediately_after_start_is_accepted(endpoint: Endpoint) -> None:
    session = endpoint.session(CHARGER_ID)
    backend = SimBackend()
    await backend.start(EndpointInfo(endpoint.url, CHARGER_ID, KEY, str(endpoint.certs.ca_pem), 2))
    try:
        await session.wait_until(
            lambda: session.connected and session.boot is not None and session.connector_status.get(1) == "Available",
            10, "boot and connector 1 Available",
        )
        stops: list[asyncio.Task[dict[str, Any]]] = []

        def start_then_stop_at_once(call: ReceivedCall) -> dict[str, Any]:
            answer = default_answer(session, call)
            # Scheduled now, sent right behind the answer on the same connection.
            loop = asyncio.get_running_loop()
            loop.call_soon(lambda: stops.append(loop.create_task(
                session.call_raw("RemoteStopTransaction", {"transactionId": answer["transactionId"]}))))
            return answer

        since = session.trace.next_seq
        with session.answering("StartTransaction", start_then_stop_at_once):
            await backend.plugin(1)
            await backend.authorize("EVENERGY-TAG-1", 1)
            start = await session.expect("StartTransaction", since=since, within=10)
            await session.wait_until(lambda: bool(stops), 5, "the RemoteStop to be sent")
            assert (await stops[0])["status"] == "Accepted"
        await session.expect("StopTransaction", where={"reason": "Remote"}, since=start.seq, within=10)
    finally:
        await backend.stop()
