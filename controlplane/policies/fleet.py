"""The OPA fleet as its members report it: OPA's status pushes, summarised per instance.

OPA POSTs its whole status to `/v1/status` whenever a bundle is downloaded or activated (or fails
to be), a plugin changes state, or a decision-log upload is attempted (OPA docs
`management-status.md`). Each report replaces the previous one of the same `labels.id`; what is
kept is what an SRE needs to see convergence and trouble: the active revision per bundle, bundle
errors, plugin states, the decision-log error and OPA's drop counters, and when it last reported.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from controlplane import jsontext
from controlplane.clock import Clock, rfc3339
from controlplane.errors import InvalidEntity, InvalidInput
from controlplane.redis_client import redis_errors

_FLEET = "cp:fleet"  # hash: OPA instance id -> JSON summary
MAX_INSTANCES = 10_000
MAX_ID_LENGTH = 256
MAX_ERRORS_KEPT = 10
MAX_TEXT = 1_000


class FleetStore:
    def __init__(self, redis: Redis, clock: Clock, *, forget_after_seconds: int) -> None:
        self._redis = redis
        self._clock = clock
        self._forget_after = forget_after_seconds

    async def report(self, body: bytes) -> dict[str, Any]:
        """Keep the summary of one OPA status report. Raises `InvalidInput`/`InvalidEntity`."""
        status = jsontext.loads(body)
        if not isinstance(status, dict):
            raise InvalidInput("an OPA status report is a JSON object")
        summary = summarise(status, rfc3339(self._clock.now()))
        with redis_errors("storing an OPA status report"):
            known = await self._redis.hexists(_FLEET, summary["id"])
            if not known and await self._redis.hlen(_FLEET) >= MAX_INSTANCES:
                await self._forget_silent()
            await self._redis.hset(_FLEET, summary["id"], jsontext.dumps(summary))
        return summary

    async def instances(self, active_revision: str | None, bundle: str) -> list[dict[str, Any]]:
        """Every OPA that reported within the retention window, with whether it runs
        `active_revision` of `bundle` and how many seconds ago it last reported."""
        await self._forget_silent()
        with redis_errors("reading the OPA fleet"):
            raw = await self._redis.hgetall(_FLEET)
        now = self._clock.now()
        found = []
        for value in raw.values():
            summary = dict(jsontext.loads(value))
            running = summary["bundles"].get(bundle, {}).get("active_revision")
            summary["current"] = active_revision is not None and running == active_revision
            summary["seconds_since_report"] = round(
                (now - datetime.fromisoformat(summary["received_at"])).total_seconds(), 1
            )
            found.append(summary)
        return sorted(found, key=lambda s: str(s["id"]))

    async def _forget_silent(self) -> None:
        """Drop instances that have not reported for the retention window (replaced pods)."""
        with redis_errors("pruning the OPA fleet"):
            raw = await self._redis.hgetall(_FLEET)
            now = self._clock.now()
            stale = [
                key
                for key, value in raw.items()
                if (
                    now - datetime.fromisoformat(jsontext.loads(value)["received_at"])
                ).total_seconds()
                > self._forget_after
            ]
            if stale:
                await self._redis.hdel(_FLEET, *stale)


def summarise(status: dict[str, Any], received_at: str) -> dict[str, Any]:
    """The parts of OPA's status payload (OPA docs `management-status.md`) the fleet view shows."""
    labels = status.get("labels")
    if not isinstance(labels, dict) or not isinstance(labels.get("id"), str) or not labels["id"]:
        raise InvalidEntity("an OPA status report carries labels.id", code="status_invalid")
    if len(labels["id"]) > MAX_ID_LENGTH:
        raise InvalidEntity("labels.id is too long", code="status_invalid")
    bundles = {}
    for name, bundle in _object(status.get("bundles")).items():
        if not isinstance(bundle, dict):
            continue
        bundles[str(name)[:MAX_TEXT]] = {
            "active_revision": _text(bundle.get("active_revision")),
            "code": _text(bundle.get("code")),
            "message": _text(bundle.get("message")),
            "errors": [_text(e) for e in _list(bundle.get("errors"))[:MAX_ERRORS_KEPT]],
            "http_code": bundle.get("http_code")
            if isinstance(bundle.get("http_code"), int)
            else None,
            "last_request": _text(bundle.get("last_request")),
            "last_successful_activation": _text(bundle.get("last_successful_activation")),
        }
    plugins = {
        str(name)[:MAX_TEXT]: _text(plugin.get("state"))
        for name, plugin in _object(status.get("plugins")).items()
        if isinstance(plugin, dict)
    }
    decision_logs = _object(status.get("decision_logs"))
    return {
        "id": labels["id"],
        "version": _text(labels.get("version")),
        "labels": {str(k)[:MAX_TEXT]: _text(v) for k, v in labels.items()},
        "bundles": bundles,
        "plugins": plugins,
        "decision_logs": {
            "code": _text(decision_logs.get("code")),
            "message": _text(decision_logs.get("message")),
        },
        "decision_logs_dropped": _dropped(
            _object(_object(status.get("metrics")).get("prometheus"))
        ),
        "received_at": received_at,
    }


def _dropped(prometheus: dict[str, Any]) -> dict[str, int]:
    """OPA's decision-log drop counters (e.g. `counter_decision_logs_dropped_buffer_size_limit_
    bytes_exceeded`): the losses OPA reports nowhere else."""
    dropped = {}
    for name, family in prometheus.items():
        if "dropped" not in str(name) or not isinstance(family, dict):
            continue
        total = 0
        for metric in _list(family.get("metric")):
            counter = _object(_object(metric).get("counter"))
            value = counter.get("value")
            if isinstance(value, int | float):
                total += int(value)
        dropped[str(name)[:MAX_TEXT]] = total
    return dropped


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else jsontext.dumps(value).decode()
    return text[:MAX_TEXT]
