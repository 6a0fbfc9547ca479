"""Secrets never reach logs: the filter masks credentials in every record, in both formats."""

import io
import json
import logging

import pytest

from gcloudctl.logs import configure, mask_secrets

CASES = [
    ("password-kv", 'auth password=hunter2 user=bob', "hunter2"),
    ("json-token", '{"token": "abc.def.ghi", "user": "x"}', "abc.def.ghi"),
    ("auth-header", "X-Auth-Token: gAAAAABlongtokenvalue0123456789", "gAAAAABlongtokenvalue0123456789"),
    ("fernet-bare", "got gAAAAABpZ0123456789abcdefghijABCDEFGHIJ back", "gAAAAABpZ0123456789abcdefghijABCDEFGHIJ"),
    ("private-key", "key: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\n-----END OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1r"),
]


@pytest.mark.parametrize("case_id,text,secret", CASES, ids=[c[0] for c in CASES])
def test_mask_secrets(case_id, text, secret):
    assert secret not in mask_secrets(text)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_records_are_masked(fmt):
    stream = io.StringIO()
    configure(level=logging.INFO, fmt=fmt, stream=stream)
    logging.getLogger("gcloudctl.test").info("connecting with password=%s", "s3cr3t-Pa55")
    out = stream.getvalue()
    assert "s3cr3t-Pa55" not in out and "***" in out
    if fmt == "json":
        assert json.loads(out.strip())["level"] == "info"
    configure()
