"""Webhook endpoints: CRUD, the SSRF rule, and Standard Webhooks signatures. Owns its commits.

Signing (https://www.standardwebhooks.com): the signed content is "{webhook-id}.{webhook-timestamp}.{body}",
the key is the base64 part of the "whsec_..." secret, and the header is "webhook-signature: v1,<base64
HMAC-SHA256>". Deliveries are made by workers (workers/webhooks.py), never by the API process.
"""

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
import uuid
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.core.errors import ProblemError, not_found, spec_error
from app.models import JobEvent, Tenant, WebhookDelivery, WebhookEndpoint
from app.models.base import utcnow
from app.schemas.webhook import WebhookCreate


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def private_address(url: str) -> str | None:
    """The first private, loopback, link-local or reserved address the URL's host resolves to, else None."""
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return None  # unresolvable now: the delivery fails and retries; checked again before each send
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_private or address.is_loopback or address.is_link_local or address.is_reserved:
            return str(address)
        if address.is_multicast or address.is_unspecified:
            return str(address)
    return None


def create_endpoint(
    *, session: Session, tenant: Tenant, body: WebhookCreate, allow_private: bool
) -> tuple[WebhookEndpoint, str]:
    url = str(body.url)
    blocked = None if allow_private else private_address(url)
    if blocked:
        raise spec_error("url", f"resolves to a private or loopback address ({blocked}); this server refuses those")
    newest = session.scalar(select(func.max(JobEvent.id))) or 0
    secret = new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=tenant.id,
        url=url,
        description=body.description,
        secret=secret,
        event_types=list(body.event_types),
        enabled=True,
        last_event_id=newest,  # events from now on
    )
    session.add(endpoint)
    session.commit()
    session.refresh(endpoint)
    return endpoint, secret


def get_endpoint(*, session: Session, tenant: Tenant, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.tenant_id != tenant.id:
        raise not_found("webhook")
    return endpoint


def list_endpoints(*, session: Session, tenant: Tenant) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant.id).order_by(WebhookEndpoint.created_at)
    return list(session.scalars(query))


def delete_endpoint(*, session: Session, endpoint: WebhookEndpoint) -> None:
    session.delete(endpoint)
    session.commit()


def list_deliveries(*, session: Session, endpoint: WebhookEndpoint, limit: int) -> list[WebhookDelivery]:
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.event_id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def redeliver(*, session: Session, endpoint: WebhookEndpoint, delivery_id: uuid.UUID) -> WebhookDelivery:
    """Send the delivery again (same webhook-id): back to pending, due now, with a fresh attempt count."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise not_found("delivery")
    if delivery.status == "pending":
        raise ProblemError(409, "delivery_pending", "the delivery is still being retried")
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, utcnow()
    session.commit()
    session.refresh(delivery)
    return delivery
