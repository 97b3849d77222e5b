"""API keys: random tokens shown once, stored as HMAC-SHA256 under the server secret."""

import hashlib
import hmac
import secrets

KEY_PREFIX = "grpo_"


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str, secret: str) -> str:
    # HMAC rather than a slow password hash: keys have 256 bits of entropy, so brute force is
    # hopeless anyway, and every request pays this cost.
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
