"""Secret userData.vars sealed in the stored text: whatever YAML style the value is written in,
the sealed text still parses, holds no secret, and unseals to the submitted text byte for byte."""

import os
import stat

import pytest
import yaml
from cryptography.fernet import Fernet

from gcloudctl.controller import secrets
from gcloudctl.controller.secrets import SecretsKeyError, VarSealer, env_or_file_source

HEAD = """apiVersion: gcloud.gov.vn/v1
kind: TenantRequest
metadata: {name: t1, agency: BYT}
spec:
  servers:
    - name: web
      userData:
"""

STYLES = [
    # id, the vars text (indented under userData), secrets that must disappear, sealed count, reason
    ("block-plain", "        vars:\n          db_password: hunter2\n          timezone: UTC\n", ["hunter2"], 1,
     "a plain scalar"),
    ("quoted", '        vars:\n          api_token: "tok en #1"\n', ["tok en #1"], 1, "a double-quoted scalar"),
    ("flow", "        vars: {db_password: hunter2, region: hn}\n", ["hunter2"], 1, "a flow mapping"),
    ("literal", "        vars:\n          private_key: |\n            -----LINE1-----\n            -----LINE2-----\n"
                "          keep: me\n", ["LINE1", "LINE2"], 1, "a block literal spanning lines"),
    ("nested", "        vars:\n          app:\n            secret: s3\n            name: x\n", ["s3"], 1,
     "a secret key inside a nested mapping"),
    ("whole-mapping", "        vars:\n          credentials:\n            user: u\n            pass: p4ss\n", ["p4ss"], 1,
     "a secret key whose value is a mapping is sealed whole"),
    ("number", "        vars:\n          pin_token: 123456\n", ["123456"], 1, "a non-string value"),
    ("empty", "        vars:\n          db_password: ''\n          auth: null\n", [], 0, "nothing to seal"),
    ("no-secrets", "        vars:\n          timezone: UTC\n", [], 0, "ordinary vars stay as they are"),
]


@pytest.fixture
def sealer(tmp_path):
    return VarSealer(env_or_file_source({}, tmp_path / "keys" / "secrets.key"))


@pytest.mark.parametrize("case_id,vars_text,hidden,count,reason", STYLES, ids=[c[0] for c in STYLES])
def test_seal_round_trip(sealer, case_id, vars_text, hidden, count, reason):
    text = HEAD + vars_text
    stored, sealed = sealer.seal(text, "t1")
    assert sealed == count, reason
    for value in hidden:
        assert value not in stored, reason
    assert yaml.safe_load(stored)["spec"]["servers"][0]["userData"]["vars"] is not None, "still YAML"
    assert sealer.unseal(stored, "t1") == text, "byte for byte"
    assert (secrets.mask(stored) == stored) == (count == 0)


def test_token_of_another_tenant_does_not_open(sealer):
    stored, _ = sealer.seal(HEAD + "        vars: {db_password: hunter2}\n", "t1")
    with pytest.raises(SecretsKeyError, match="another tenant"):
        sealer.unseal(stored.replace("t1", "t2", 1), "t2")


def test_wrong_key_does_not_open(sealer, tmp_path):
    stored, _ = sealer.seal(HEAD + "        vars: {db_password: hunter2}\n", "t1")
    other = VarSealer(env_or_file_source({"GCLOUDCTL_SECRETS_KEY": Fernet.generate_key().decode()}, tmp_path / "x"))
    with pytest.raises(SecretsKeyError, match="does not open"):
        other.unseal(stored, "t1")


def test_key_file_is_created_private_on_first_use_only(tmp_path):
    path = tmp_path / "keys" / "secrets.key"
    source = env_or_file_source({}, path)
    with pytest.raises(SecretsKeyError, match="does not exist"):
        source(False)  # reading (the controller) never creates a key
    key = source(True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert source(True) == key == source(False), "created once"


def test_key_from_environment_wins_and_is_checked(tmp_path):
    key = Fernet.generate_key().decode()
    assert env_or_file_source({"GCLOUDCTL_SECRETS_KEY": key}, tmp_path / "k")(True) == key.encode()
    assert not (tmp_path / "k").exists()
    with pytest.raises(SecretsKeyError, match="not a Fernet key"):
        env_or_file_source({"GCLOUDCTL_SECRETS_KEY": "short"}, tmp_path / "k")(True)
