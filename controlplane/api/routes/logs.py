"""`POST /v1/logs`: OPA's decision-log uploads (role `opa` only).

Answers 2xx only once a signed checkpoint covers every event of the chunk (`ledger.decision_logs`);
any other answer makes OPA keep the chunk and send it again, which the append deduplicates.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from controlplane.api.deps import OpaCaller, ServicesDep
from controlplane.api.media import require_json
from controlplane.clock import rfc3339
from controlplane.ledger.decision_logs import decode_upload

router = APIRouter(tags=["opa"])


@router.post("/v1/logs", summary="Receive a chunk of OPA decision-log events (gzip JSON array)")
async def receive_logs(
    request: Request, services: ServicesDep, caller: OpaCaller
) -> dict[str, int]:
    require_json(request)
    settings = services.settings
    # Decoding a chunk and building its entries is pure CPU (JSON, RFC 8785, SHA-256): done in a
    # thread, the event loop gets the interpreter back every few milliseconds and authorizations
    # do not wait for the whole chunk.
    entries = await asyncio.to_thread(
        decode_upload,
        await request.body(),
        request.headers.get("content-encoding"),
        max_decompressed=settings.max_log_decompressed_bytes,
        max_events=settings.max_log_events_per_upload,
        received_at=rfc3339(services.clock.now()),
    )
    result = await services.decision_logs.append(entries)
    return {
        "received": result.received,
        "appended": result.appended,
        "duplicates": result.duplicates,
        "quarantined": result.quarantined,
    }
