"""What a user types to reach LocalStack, and what `--backend` says it moves."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from local_emulation import localstack
from local_emulation.cli import app
from local_emulation.session import SHOWN_SERVICES


@pytest.mark.parametrize(
    ("typed", "normalized"),
    [
        ("http://127.0.0.1:4566", "http://127.0.0.1:4566"),
        ("http://127.0.0.1:4566/", "http://127.0.0.1:4566"),
        (" http://localhost:4566// ", "http://localhost:4566"),
        ("https://localstack.example:443/", "https://localstack.example:443"),
    ],
)
def test_a_trailing_slash_is_fine(typed: str, normalized: str) -> None:
    assert localstack.normalized_url(typed) == normalized


@pytest.mark.parametrize(
    ("typed", "complaint"),
    [
        ("http://127.0.0.1:4566/_localstack/health", "has a path"),
        ("127.0.0.1:4566", "not an http(s)://host:port URL"),
        ("http://127.0.0.1:45x6", "invalid port"),
    ],
)
def test_what_is_not_an_endpoint_is_refused_with_the_reason(typed: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        localstack.normalized_url(typed)


def test_the_demo_refuses_a_bad_localstack_url_naming_the_option() -> None:
    result = CliRunner().invoke(
        app, ["demo", "--backend", "localstack", "--localstack-url", "http://x:1/path"]
    )
    assert result.exit_code == 2
    assert "--localstack-url" in result.output and "has a path" in result.output


def test_backend_help_lists_every_service_and_where_it_runs() -> None:
    result = CliRunner().invoke(app, ["demo", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for service in SHOWN_SERVICES:
        assert service in result.output, service
    assert "on LocalStack" in result.output and "on the embedded moto" in result.output
