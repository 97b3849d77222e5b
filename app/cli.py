"""Operator commands: `grpo-admin migrate | create-key | list-keys | revoke-key`.

Runs against the database named by the settings (DATABASE_URL or GRPO_DATA_DIR), like the API does.
"""

import argparse
import json
import sys
import uuid

from app.core.config import settings
from app.core.db import make_engine, make_session_factory
from app.core.migrate import upgrade_database
from app.services import tenants


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grpo-admin", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply the database migrations (alembic upgrade head)")
    create = commands.add_parser("create-key", help="create an API key for a tenant (created if new); prints the key")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="default", help="a label for the key")
    listing = commands.add_parser("list-keys", help="list API keys (never the keys themselves)")
    listing.add_argument("--tenant")
    revoke = commands.add_parser("revoke-key", help="revoke an API key by id")
    revoke.add_argument("key_id", type=uuid.UUID)
    args = parser.parse_args(argv)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "migrate":
        upgrade_database(settings.database_url)
        return 0
    engine = make_engine(settings.database_url)
    secret = settings.secret_key.get_secret_value()
    with make_session_factory(engine)() as session:
        if args.command == "create-key":
            tenant = tenants.get_or_create_tenant(session=session, name=args.tenant)
            _, key = tenants.create_api_key(session=session, tenant=tenant, name=args.name, secret=secret)
            sys.stdout.write(key + "\n")
        elif args.command == "list-keys":
            tenant = tenants.get_or_create_tenant(session=session, name=args.tenant) if args.tenant else None
            for api_key in tenants.list_api_keys(session=session, tenant=tenant):
                row = {
                    "id": str(api_key.id),
                    "tenant": api_key.tenant.name,
                    "name": api_key.name,
                    "prefix": api_key.prefix,
                    "created_at": api_key.created_at.isoformat(),
                    "revoked": api_key.revoked_at is not None,
                }
                sys.stdout.write(json.dumps(row) + "\n")
        elif args.command == "revoke-key" and not tenants.revoke_api_key(session=session, key_id=args.key_id):
            sys.stderr.write(f"no active key with id {args.key_id}\n")
            return 1
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
