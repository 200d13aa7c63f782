"""The ledger's API (DESIGN.md §4): the latest signed checkpoint and the log's verifier key
(public), entries with their erasable payloads and the entries of one decision (role `auditor` or
`admin`: they hold inputs), RFC 9162 proofs (public), reconciliation (`auditor`, `admin`) and the
erasure of a payload (`admin`, itself recorded).

Hashes are standard base64 with padding (RFC 4648 §4), as in C2SP notes. Proofs are answered for
any size up to the current one, so that an auditor can prove an entry against the checkpoint they
hold and link checkpoints of different sizes.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from controlplane import jsontext
from controlplane.api.deps import AdminCaller, AuditorCaller, ServicesDep, actor
from controlplane.errors import InvalidInput, NotFound
from controlplane.ledger.log import leaf_of

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
TEXT = "text/plain; charset=utf-8"
Index = Annotated[int, Query(ge=0, le=2**53)]
ReasonQuery = Annotated[str, Query(min_length=1, max_length=1000, description="Why (recorded).")]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@router.get("/checkpoint", summary="The latest signed checkpoint (C2SP tlog-checkpoint note)")
async def checkpoint(services: ServicesDep) -> PlainTextResponse:
    note = await (await services.ledger.ledger()).checkpoint()
    if note is None:
        raise NotFound("the ledger has no checkpoint yet: nothing was appended", code="empty_log")
    return PlainTextResponse(note, media_type=TEXT, headers={"Cache-Control": "no-cache"})


@router.get("/key", summary="The log's verifier key (C2SP signed-note vkey)")
async def key(services: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(await services.ledger.vkey() + "\n", media_type=TEXT)


@router.get("/entries/{index}", summary="One entry, exactly as hashed (role auditor or admin)")
async def entry(index: int, services: ServicesDep, caller: AuditorCaller) -> dict[str, Any]:
    if index < 0:
        raise InvalidInput("an index is a number from 0", code="index_invalid")
    ledger = await services.ledger.ledger()
    data = await ledger.entry(index)
    payload = await ledger.payload(index)
    return {
        "index": index,
        "entry": data.decode("utf-8"),
        "leaf_hash": _b64(leaf_of(data)),
        # Salt and value of each committed field (ledger/records.py); null once erased.
        "payload": None if payload is None else jsontext.loads(payload),
    }


@router.delete(
    "/entries/{index}/payload",
    summary="Erase an entry's personal-data payload; the entry and its proofs stay valid (admin)",
)
async def erase_payload(
    index: Annotated[int, Path(ge=0, le=2**53)],
    services: ServicesDep,
    caller: AdminCaller,
    reason: ReasonQuery,
) -> dict[str, Any]:
    ledger = await services.ledger.ledger()
    await ledger.entry(index)  # NotFound for an index that is not in the log
    async with services.evidence.change(
        "cp.admin.ledger.erase", actor=actor(caller), index=index, reason=reason
    ):
        erased = await ledger.erase_payload(index)
    return {"index": index, "erased": erased}


@router.get("/decisions/{decision_id}", summary="The entries naming one decision (auditor, admin)")
async def decision(
    decision_id: Annotated[str, Path(min_length=1, max_length=256)],
    services: ServicesDep,
    caller: AuditorCaller,
) -> dict[str, Any]:
    indexes = await (await services.ledger.ledger()).decision_indexes(decision_id)
    if not indexes:
        raise NotFound(
            f"no entry names decision {decision_id!r} within the dedupe window",
            code="decision_unknown",
        )
    return {"decision_id": decision_id, "indexes": indexes}


@router.get(
    "/reconcile",
    summary="OPA decisions seen but missing from OPA's decision logs, and OPA's drop counters",
)
async def reconcile(
    services: ServicesDep,
    caller: AuditorCaller,
    limit: Annotated[int, Query(ge=0, le=1000)] = 100,
) -> dict[str, Any]:
    return await services.reconciler.report(limit=limit)


@router.get("/proof/inclusion", summary="RFC 9162 inclusion proof of entry `index` in tree `size`")
async def inclusion(index: Index, size: Index, services: ServicesDep) -> dict[str, Any]:
    ledger = await services.ledger.ledger()
    await _check_size(size, await ledger.size())
    if index >= size:
        raise InvalidInput(f"index {index} is not in a tree of size {size}", code="index_invalid")
    proof = await ledger.inclusion_proof(index, size)
    leaf = leaf_of(await ledger.entry(index))
    return {
        "index": index,
        "size": size,
        "leaf_hash": _b64(leaf),
        "proof": [_b64(h) for h in proof],
    }


@router.get("/proof/consistency", summary="RFC 9162 consistency proof from tree `from` to `to`")
async def consistency(
    services: ServicesDep,
    old: Annotated[int, Query(alias="from", ge=1, le=2**53)],
    new: Annotated[int, Query(alias="to", ge=1, le=2**53)],
) -> dict[str, Any]:
    ledger = await services.ledger.ledger()
    await _check_size(new, await ledger.size())
    if old > new:
        raise InvalidInput("`from` must not be larger than `to`", code="size_invalid")
    proof = await ledger.consistency_proof(old, new)
    return {"from": old, "to": new, "proof": [_b64(h) for h in proof]}


async def _check_size(size: int, current: int) -> None:
    if size < 1:
        raise InvalidInput("a tree size is at least 1", code="size_invalid")
    if size > current:
        raise NotFound(f"the log has {current} entries, not {size}", code="size_unknown")
