"""Webhook delivery, on workers: job events become deliveries, deliveries are POSTed, signed, with retries.

At least once: a delivery is done only after a 2xx; a failure is retried with exponential backoff
(settings.webhook_backoff_s, doubling, at most an hour) up to webhook_max_attempts, then marked failed
(redeliver by hand). Per endpoint and job, deliveries go out in event order: a later one waits while an
earlier one is still pending. Several workers may run this: a delivery is leased by a conditional UPDATE.
"""

import json
import logging
import threading
from datetime import timedelta

import httpx
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from app.core.config import Settings
from app.models import Job, JobEvent, WebhookDelivery, WebhookEndpoint
from app.models.base import utcnow
from app.services.webhooks import private_address, sign

logger = logging.getLogger(__name__)
DEFAULT_TYPES = ("status", "alert", "checkpoint", "evaluation")
LEASE_S = 60.0  # a sending worker holds a delivery this long; a dead one's lease runs out
TIMEOUT_S = 10.0


def collect_events(session: Session, *, settle_s: float = 2.0) -> int:
    """New job events of each enabled endpoint's tenant -> pending deliveries; returns how many.

    Only events older than `settle_s` are taken, so an event inserted by a transaction that committed after
    a newer one (ids are assigned before commit on PostgreSQL) is not skipped by the cursor.
    """
    top = session.scalar(
        select(func.max(JobEvent.id)).where(JobEvent.created_at < utcnow() - timedelta(seconds=settle_s))
    )
    if top is None:
        return 0
    created = 0
    for endpoint in session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.enabled, WebhookEndpoint.last_event_id < top)
    ):
        events = session.scalars(
            select(JobEvent)
            .join(Job, Job.id == JobEvent.job_id)
            .where(
                Job.tenant_id == endpoint.tenant_id,
                JobEvent.id > endpoint.last_event_id,
                JobEvent.id <= top,
                JobEvent.type.in_(endpoint.event_types or DEFAULT_TYPES),
            )
            .order_by(JobEvent.id)
        ).all()
        for event in events:
            session.add(
                WebhookDelivery(
                    endpoint_id=endpoint.id,
                    job_id=event.job_id,
                    event_id=event.id,
                    event_type=event.type,
                    payload=_payload(event),
                    status="pending",
                    attempts=0,
                    next_attempt_at=utcnow(),
                )
            )
        endpoint.last_event_id = top
        created += len(events)
    session.commit()
    return created


def _payload(event: JobEvent) -> dict:
    return {
        "type": f"job.{event.type}",
        "timestamp": event.created_at.isoformat(),
        "data": {
            "job_id": str(event.job_id),
            "event_id": event.id,
            "step": event.step,
            "level": event.level,
            "message": event.message,
            **event.data,
        },
    }


def send_due(session: Session, settings: Settings, client: httpx.Client) -> int:
    """POST every due delivery that is first in line for its endpoint and job; returns how many were tried."""
    now = utcnow()
    earlier = aliased(WebhookDelivery)
    blocked = exists().where(
        earlier.endpoint_id == WebhookDelivery.endpoint_id,
        earlier.job_id == WebhookDelivery.job_id,
        earlier.status == "pending",
        earlier.event_id < WebhookDelivery.event_id,
    )
    due = session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now, ~blocked)
        .order_by(WebhookDelivery.event_id)
    ).all()
    for delivery in due:
        leased = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery.id, WebhookDelivery.next_attempt_at == delivery.next_attempt_at)
            .values(next_attempt_at=now + timedelta(seconds=LEASE_S))
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
        if leased:
            _attempt(session, settings, client, delivery.id)
    return len(due)


def _attempt(session: Session, settings: Settings, client: httpx.Client, delivery_id: object) -> None:
    delivery = session.get(WebhookDelivery, delivery_id)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery else None
    if delivery is None or endpoint is None:
        return
    code, error = None, None
    blocked = None if settings.webhook_allow_private else private_address(endpoint.url)
    if blocked:
        error = f"refused: {endpoint.url} resolves to a private address ({blocked})"
    else:
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        timestamp = int(utcnow().timestamp())
        headers = {
            "content-type": "application/json",
            "webhook-id": str(delivery.id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(endpoint.secret, str(delivery.id), timestamp, body),
        }
        try:
            response = client.post(endpoint.url, content=body, headers=headers, timeout=TIMEOUT_S)
            code = response.status_code
            error = None if response.is_success else f"HTTP {code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = code, error
    if error is None:
        delivery.status, delivery.delivered_at = "succeeded", utcnow()
    elif delivery.attempts >= settings.webhook_max_attempts:
        delivery.status = "failed"
    else:
        wait = min(settings.webhook_backoff_s * 2 ** (delivery.attempts - 1), 3600.0)
        delivery.next_attempt_at = utcnow() + timedelta(seconds=wait)
    session.commit()


def deliver_once(*, session_factory: sessionmaker[Session], settings: Settings, client: httpx.Client) -> None:
    with session_factory() as session:
        collect_events(session)
        send_due(session, settings, client)


def start_webhook_sender(*, session_factory: sessionmaker[Session], settings: Settings) -> threading.Event:
    """A daemon thread in every worker: collect and send every couple of seconds; set the event to stop."""
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(follow_redirects=False) as client:
            while not stop.wait(min(settings.heartbeat_interval_s, 2.0)):
                try:
                    deliver_once(session_factory=session_factory, settings=settings, client=client)
                except Exception:
                    logger.warning("webhook delivery sweep failed", exc_info=True)

    threading.Thread(target=loop, name="webhook-sender", daemon=True).start()
    return stop
