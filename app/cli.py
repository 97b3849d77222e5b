"""Operator commands: `grpo-admin migrate | create-key | list-keys | revoke-key | set-limits | list-tenants`.

Runs against the database named by the settings (DATABASE_URL or GRPO_DATA_DIR), like the API does.
Listings are JSON lines. set-limits also sets a tenant's budgets (--budget-*).
"""

import argparse
import json
import sys
import uuid

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.core.config import Settings, settings
from app.core.db import make_engine, make_session_factory
from app.core.migrate import upgrade_database
from app.models import ApiKey, Tenant
from app.schemas.budget import BUDGET_NAMES, Budget
from app.services import budgets, tenants


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grpo-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    create = commands.add_parser("create-key", help="create an API key for a tenant (created if new); prints the key")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="default", help="a label for the key")
    listing = commands.add_parser("list-keys", help="list API keys (never the keys themselves)")
    listing.add_argument("--tenant")
    revoke = commands.add_parser("revoke-key", help="revoke an API key by id (from list-keys)")
    revoke.add_argument("key_id", type=uuid.UUID)
    limits = commands.add_parser("set-limits", help="set a tenant's running-job and queued-job limits")
    limits.add_argument("--tenant", required=True)
    limits.add_argument("--max-running", type=_positive, help="jobs of the tenant that may run at once")
    limits.add_argument("--max-queued", type=_positive, help="queued jobs beyond which a submit is a 429")
    # Budgets over all the tenant's jobs together; a job that crosses one pauses. 0 removes the limit.
    for name in BUDGET_NAMES:
        limits.add_argument(f"--budget-{name.replace('_', '-')}", type=_budget, help=f"tenant budget: {name}")
    commands.add_parser("list-tenants", help="list tenants with their limits and key counts")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _budget(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must be 0 (no limit) or more")
    return value


def _tenant_row(tenant: Tenant) -> dict[str, object]:
    return {
        "id": str(tenant.id),
        "name": tenant.name,
        "max_running_jobs": tenant.max_running_jobs,
        "max_queued_jobs": tenant.max_queued_jobs,
    } | ({"budget": tenant.budget} if tenant.budget else {})


def _set_budget(session: Session, tenant: Tenant, args: argparse.Namespace) -> None:
    given = {name: getattr(args, f"budget_{name}") for name in BUDGET_NAMES}
    if all(value is None for value in given.values()):
        return
    merged = {**(tenant.budget or {}), **{name: value for name, value in given.items() if value is not None}}
    limits = {name: value for name, value in merged.items() if value}  # 0 removes a limit
    budgets.set_tenant_budget(session=session, tenant=tenant, budget=Budget.model_validate(limits))


def _key_row(api_key: ApiKey) -> dict[str, object]:
    return {
        "id": str(api_key.id),
        "tenant": api_key.tenant.name,
        "name": api_key.name,
        "prefix": api_key.prefix,
        "created_at": api_key.created_at.isoformat(),
        "last_used_at": api_key.last_used_at.isoformat() if api_key.last_used_at else None,
        "revoked": api_key.revoked_at is not None,
    }


def _emit(row: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(row) + "\n")


def _run(args: argparse.Namespace, session: Session, config: Settings) -> int:
    if args.command == "create-key":
        tenant = tenants.get_or_create_tenant(
            session=session,
            name=args.tenant,
            max_running_jobs=config.default_max_running_jobs,
            max_queued_jobs=config.default_max_queued_jobs,
        )
        _, key = tenants.create_api_key(
            session=session, tenant=tenant, name=args.name, secret=config.secret_key.get_secret_value()
        )
        sys.stdout.write(key + "\n")
        return 0
    if args.command == "revoke-key":
        if not tenants.revoke_api_key(session=session, key_id=args.key_id):
            sys.stderr.write(f"no active key with id {args.key_id}\n")
            return 1
        return 0
    if args.command == "list-tenants":
        for tenant in tenants.list_tenants(session=session):
            _emit(_tenant_row(tenant) | {"keys": len(tenant.api_keys)})
        return 0
    tenant = tenants.get_tenant(session=session, name=args.tenant) if args.tenant else None
    if args.tenant and tenant is None:
        sys.stderr.write(f"no tenant named {args.tenant!r}\n")
        return 1
    if args.command == "list-keys":
        for api_key in tenants.list_api_keys(session=session, tenant=tenant):
            _emit(_key_row(api_key))
    elif args.command == "set-limits":
        assert tenant is not None
        updated = tenants.set_limits(
            session=session, tenant=tenant, max_running_jobs=args.max_running, max_queued_jobs=args.max_queued
        )
        try:
            _set_budget(session, updated, args)
        except ValidationError as exc:
            sys.stderr.write(f"invalid budget: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}\n")
            return 2
        _emit(_tenant_row(updated))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "migrate":
        upgrade_database(settings.database_url)
        return 0
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            return _run(args, session, settings)
    finally:
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
