import json

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from saascore.demo import demo_setup
from tests.factories import auth

pytestmark = pytest.mark.django_db


@pytest.fixture
def credentials_file(settings, tmp_path):
    settings.DEMO_CREDENTIALS_FILE = tmp_path / "demo-credentials.json"
    return settings.DEMO_CREDENTIALS_FILE


def test_demo_writes_working_credentials(credentials_file, api_client):
    call_command("demo", stdout=open("/dev/null", "w"))
    data = json.loads(credentials_file.read_text())
    assert set(data) == {"admin", "tenants"}
    assert authenticate(username=data["admin"]["username"], password=data["admin"]["password"]).is_superuser
    assert [t["slug"] for t in data["tenants"]] == ["demo", "demo-bank"]
    for tenant in data["tenants"]:
        response = api_client.get("/api/v1/tenant", **auth(tenant["api_key"]))
        assert response.json()["slug"] == tenant["slug"]
    assert oct(credentials_file.stat().st_mode & 0o777) == "0o600"


def test_demo_is_idempotent_and_replaces_keys_that_stopped_working(credentials_file):
    first = demo_setup().as_dict()
    assert demo_setup().as_dict() == first
    data = json.loads(credentials_file.read_text())
    data["tenants"][1]["api_key"] = "sc_1_revoked-or-lost"
    credentials_file.write_text(json.dumps(data))
    third = demo_setup().as_dict()
    assert third["tenants"][0] == first["tenants"][0]
    assert third["tenants"][1]["api_key"] != first["tenants"][1]["api_key"]
