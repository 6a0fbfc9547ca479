"""The request API against the REAL devcloud Keystone: `gcloudctl api serve` in a subprocess
validates tokens with its own service credentials (`devcloud-gcloudctl`), and the CLI talks to
it with each person's own clouds.yaml entry.

Proves: the identity (user, domain, agency, roles) comes from Keystone; 401 for no token, a
forged token, a token revoked in Keystone during the test (after the cache window), and an
expired token (an application credential with a short `expires_at` caps its tokens' expiry:
Keystone sets the token's expires_at to the credential's); 503 (never 500) when Keystone is
unreachable; the CLI's exit codes through the API; TLS through `api serve --tls-cert/--tls-key`.
Only database rows of the test's own server are created; the application credential is deleted.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import openstack.config
import pytest
import yaml
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3

from tests.fixtures.api import launch, stop

from .conftest import request_text
from .test_tls import self_signed

pytestmark = pytest.mark.devcloud
IDENTITY = {"service_type": "identity", "interface": "public"}
CACHE = 2.0  # the servers here keep a validation 2 s at most


def ks_session(devcloud, cloud: str):
    """A fresh keystoneauth session (a fresh token) for a clouds.yaml entry."""
    config = openstack.config.OpenStackConfig(config_files=[str(devcloud.clouds_yaml)], load_envvars=False)
    return config.get_one(cloud).get_session()


def whoami(server, token: str | None) -> httpx.Response:
    return httpx.get(server.url + "/v1/whoami", headers={"X-Auth-Token": token} if token else {}, timeout=30)


def gcloudctl(server, *args: str, cloud: str | None = None, extra_env: dict | None = None):
    env = dict(server.env) | (extra_env or {})
    if cloud:
        env["OS_CLOUD"] = cloud
    return subprocess.run([sys.executable, "-m", "gcloudctl.cli.main", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_whoami_is_the_keystone_identity(devcloud, api_server):
    body = whoami(api_server, ks_session(devcloud, "devcloud-byt-requester").get_token()).json()
    assert (body["user"], body["domain"], body["agency"], body["actor"]) == ("nguyen.van.a", "BYT", "BYT",
                                                                            "nguyen.van.a@BYT")
    assert body["roles"] == ["gcloud-requester"] and body["authenticated"] is True
    operator = whoami(api_server, ks_session(devcloud, "devcloud-operator").get_token()).json()
    assert operator["agency"] is None and "gcloud-operator" in operator["roles"]
    btc = whoami(api_server, ks_session(devcloud, "devcloud-btc-user").get_token()).json()
    assert btc["agency"] == "BTC" and {"gcloud-requester", "gcloud-approver"} <= set(btc["roles"])


def test_no_token_and_forged_token_are_401(devcloud, api_server):
    real = ks_session(devcloud, "devcloud-byt-requester").get_token()
    forged = real[:-6] + ("AAAAAA" if not real.endswith("AAAAAA") else "BBBBBB")
    for token in (None, forged, "gAAAAABnot-a-fernet-token", str(uuid.uuid4())):
        answer = whoami(api_server, token)
        assert answer.status_code == 401 and answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["type"].endswith("/unauthenticated")


def test_token_revoked_in_keystone_is_refused_once_the_cache_window_ends(devcloud, api_server):
    token = ks_session(devcloud, "devcloud-byt-requester").get_token()
    assert whoami(api_server, token).status_code == 200
    admin = ks_session(devcloud, "devcloud")
    revoked = admin.delete("/auth/tokens", endpoint_filter=IDENTITY, headers={"X-Subject-Token": token},
                           raise_exc=False)
    assert revoked.status_code == 204, revoked.text
    time.sleep(CACHE + 0.5)
    answer = whoami(api_server, token)
    assert answer.status_code == 401, answer.text
    other = ks_session(devcloud, "devcloud-byt-requester").get_token()
    assert whoami(api_server, other).status_code == 200, "only the revoked token is refused"


def test_expired_token_is_refused(devcloud, api_server):
    """Keystone caps a token issued for an application credential at the credential's
    expires_at: a credential expiring in 12 s gives a token that is expired 12 s later."""
    operator = ks_session(devcloud, "devcloud-operator")
    user_id = operator.get_user_id()
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=12)
    made = operator.post(f"/users/{user_id}/application_credentials", endpoint_filter=IDENTITY, json={
        "application_credential": {"name": f"gcloudctl-api-test-{uuid.uuid4().hex[:8]}",
                                   "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S")}})
    credential = made.json()["application_credential"]
    try:
        auth_url = yaml.safe_load(devcloud.clouds_yaml.read_text())["clouds"]["devcloud-operator"]["auth"]["auth_url"]
        token = ksa_session.Session(auth=v3.ApplicationCredential(
            auth_url=auth_url, application_credential_id=credential["id"],
            application_credential_secret=credential["secret"])).get_token()
        first = whoami(api_server, token)
        assert first.status_code == 200 and first.json()["user"] == "gc.operator"
        checked = operator.get("/auth/tokens?nocatalog", endpoint_filter=IDENTITY, headers={"X-Subject-Token": token})
        token_expiry = datetime.fromisoformat(checked.json()["token"]["expires_at"].replace("Z", "+00:00"))
        assert token_expiry <= expires + timedelta(seconds=1), "Keystone capped the token at the credential's expiry"
        time.sleep(max(0.0, (token_expiry - datetime.now(timezone.utc)).total_seconds()) + CACHE + 1)
        answer = whoami(api_server, token)
        assert answer.status_code == 401, answer.text
    finally:
        operator.delete(f"/users/{user_id}/application_credentials/{credential['id']}", endpoint_filter=IDENTITY,
                        raise_exc=False)


def test_keystone_unreachable_is_503(devcloud, tmp_path):
    clouds = yaml.safe_load(devcloud.clouds_yaml.read_text())
    entry = clouds["clouds"]["devcloud-gcloudctl"]
    entry["auth"]["auth_url"] = "http://127.0.0.1:9/v3"  # nothing listens on the discard port
    dead = tmp_path / "clouds.yaml"
    dead.write_text(yaml.safe_dump(clouds))
    os.chmod(dead, 0o600)
    server = launch(tmp_path / "dead", dead, extra=("--keystone-timeout", "2"))
    try:
        answer = whoami(server, ks_session(devcloud, "devcloud-byt-requester").get_token())
        assert answer.status_code == 503 and answer.json()["type"].endswith("/unavailable"), answer.text
    finally:
        stop(server)


def test_cli_through_the_api_with_own_clouds_entry(devcloud, api_server, tmp_path):
    name = f"byt-apicli-{uuid.uuid4().hex[:6]}"
    request = tmp_path / "tenant.yaml"
    request.write_text(request_text(name))
    api = ("--api", api_server.url)
    submitted = gcloudctl(api_server, "-o", "json", "request", "submit", str(request), *api,
                          cloud="devcloud-byt-requester")
    assert submitted.returncode == 0, submitted.stderr
    version = yaml.safe_load(submitted.stdout)
    assert version["submittedBy"] == "nguyen.van.a@BYT" and version["state"] == "pending-approval"
    rid = str(version["id"])
    own = gcloudctl(api_server, "request", "approve", rid, "--reason", "mine", *api, cloud="devcloud-byt-requester")
    assert own.returncode == 4, own.stderr  # 403: a requester may not approve (and never its own)
    for args in (("status", name), ("request", "show", rid), ("request", "approve", rid, "--reason", "x"),
                 ("request", "delete", name), ("audit", "export", "--tenant", name)):
        foreign = gcloudctl(api_server, *args, *api, cloud="devcloud-btc-user")
        assert foreign.returncode == 7, (args, foreign.stderr)  # 404: another agency's tenant does not exist
    approved = gcloudctl(api_server, "-o", "json", "request", "approve", rid, "--reason", "ok", *api,
                         cloud="devcloud-byt-approver1")
    assert approved.returncode == 0 and yaml.safe_load(approved.stdout)["approvals"] == 1, approved.stderr
    env_api = gcloudctl(api_server, "status", name, cloud="devcloud-byt-approver2",
                        extra_env={"GCLOUDCTL_API": api_server.url})
    assert env_api.returncode == 0 and name in env_api.stdout, env_api.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(request_text(name, **{"spec.colour": "blue"}))
    invalid = gcloudctl(api_server, "request", "submit", str(bad), *api, cloud="devcloud-byt-requester")
    assert invalid.returncode == 2 and f"{bad}:" in invalid.stderr and "colour" in invalid.stderr, invalid.stderr
    no_identity = gcloudctl(api_server, "request", "list", *api)
    assert no_identity.returncode == 2 and "clouds.yaml" in no_identity.stderr


def test_tls_serve_and_cli_with_ca(devcloud, start_api_server, tmp_path):
    cert_file, key_file = self_signed(tmp_path)
    server = start_api_server(extra=("--tls-cert", str(cert_file), "--tls-key", str(key_file)), scheme="https")
    token = ks_session(devcloud, "devcloud-byt-requester").get_token()
    answer = httpx.get(server.url + "/v1/whoami", headers={"X-Auth-Token": token}, verify=str(cert_file))
    assert answer.status_code == 200 and answer.json()["user"] == "nguyen.van.a"
    listed = gcloudctl(server, "--api", server.url, "--api-ca", str(cert_file), "request", "list",
                       cloud="devcloud-byt-requester")
    assert listed.returncode == 0, listed.stderr
    untrusted = gcloudctl(server, "--api", server.url, "request", "list", cloud="devcloud-byt-requester")
    assert untrusted.returncode == 6, untrusted.stderr
