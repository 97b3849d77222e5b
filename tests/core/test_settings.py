"""Settings refuse to start a production service with development defaults."""

import pytest
from pydantic import ValidationError

from app.core.config import Settings


def test_production_needs_a_real_secret_and_a_metrics_token(tmp_path):
    with pytest.raises(ValidationError, match="GRPO_SECRET_KEY"):
        Settings(data_dir=tmp_path, environment="production", metrics_token="scrape")
    with pytest.raises(ValidationError, match="GRPO_METRICS_TOKEN"):
        Settings(data_dir=tmp_path, environment="production", secret_key="x" * 40)
    settings = Settings(data_dir=tmp_path, environment="production", secret_key="x" * 40, metrics_token="scrape")
    assert settings.metrics_token is not None


def test_development_allows_the_defaults(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.environment == "development" and settings.metrics_token is None
