"""The ledger's read API (DESIGN.md §4): the latest signed checkpoint and the log's verifier key
(public), entries (role `auditor` or `admin`: they hold inputs) and RFC 9162 proofs (public).

Hashes are standard base64 with padding (RFC 4648 §4), as in C2SP notes. Proofs are answered for
any size up to the current one, so that an auditor can prove an entry against the checkpoint they
hold and link checkpoints of different sizes.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from controlplane.api.deps import AuditorCaller, ServicesDep
from controlplane.errors import InvalidInput, NotFound
from controlplane.ledger.log import leaf_of

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])
TEXT = "text/plain; charset=utf-8"
Index = Annotated[int, Query(ge=0, le=2**53)]


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
    data = await (await services.ledger.ledger()).entry(index)
    return {"index": index, "entry": data.decode("utf-8"), "leaf_hash": _b64(leaf_of(data))}


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
