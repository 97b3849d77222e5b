"""Webhook endpoints of the caller's tenant (app/services/webhooks.py); deliveries are made by workers."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.api.deps import CurrentTenant, SessionDep, SettingsDep
from app.schemas.webhook import (
    DeliveriesPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhooksPublic,
)
from app.services import webhooks as service

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(
    body: WebhookCreate, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep
) -> WebhookCreated:
    """Receive job events (status changes, alerts, budget pauses, checkpoints, evaluations) at `url`, signed
    as Standard Webhooks do. The secret is in this answer only. Private and loopback addresses are refused
    unless the operator allows them."""
    endpoint, secret = service.create_endpoint(
        session=session, tenant=tenant, body=body, allow_private=settings.webhook_allow_private
    )
    return WebhookCreated.model_validate(endpoint).model_copy(update={"secret": secret})


@router.get("", response_model=WebhooksPublic)
def list_webhooks(session: SessionDep, tenant: CurrentTenant) -> WebhooksPublic:
    """The tenant's webhook endpoints, oldest first (without their secrets)."""
    endpoints = service.list_endpoints(session=session, tenant=tenant)
    return WebhooksPublic(data=[WebhookPublic.model_validate(e) for e in endpoints])


@router.get("/{webhook_id}", response_model=WebhookPublic)
def read_webhook(webhook_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> WebhookPublic:
    """One endpoint (its secret was shown only when it was created)."""
    return WebhookPublic.model_validate(service.get_endpoint(session=session, tenant=tenant, endpoint_id=webhook_id))


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant) -> Response:
    """Remove the endpoint and its delivery log; nothing more is sent to it."""
    endpoint = service.get_endpoint(session=session, tenant=tenant, endpoint_id=webhook_id)
    service.delete_endpoint(session=session, endpoint=endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesPublic)
def list_deliveries(
    webhook_id: uuid.UUID,
    session: SessionDep,
    tenant: CurrentTenant,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveriesPublic:
    """The delivery log, newest first: status, attempts, the last answer code or error."""
    endpoint = service.get_endpoint(session=session, tenant=tenant, endpoint_id=webhook_id)
    deliveries = service.list_deliveries(session=session, endpoint=endpoint, limit=limit)
    return DeliveriesPublic(data=[DeliveryPublic.model_validate(d) for d in deliveries])


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic)
def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, session: SessionDep, tenant: CurrentTenant
) -> DeliveryPublic:
    """Send a delivered or failed delivery again, with the same webhook-id. 409 while it is still retrying."""
    endpoint = service.get_endpoint(session=session, tenant=tenant, endpoint_id=webhook_id)
    return DeliveryPublic.model_validate(service.redeliver(session=session, endpoint=endpoint, delivery_id=delivery_id))
