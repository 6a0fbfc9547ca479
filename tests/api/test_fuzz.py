"""Fuzzed submission bodies (hypothesis, 600 cases): the API answers 4xx problem+json, never
5xx, and stores nothing unless it answered 201 (then exactly one version). Bodies: random
bytes, random text, the example request with bytes flipped, lines dropped or values replaced,
alias/anchor bombs, deep nesting and huge scalars; content types mixed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies as st

from gcloudctl.api.app import create_app
from gcloudctl.api.limits import RateLimiter

from .conftest import FakeValidator, auth, request_text, stored

EXAMPLE = request_text("byt-fuzz").encode()
LINES = EXAMPLE.split(b"\n")


def _flip(data: bytes, positions: list[int], values: list[int]) -> bytes:
    out = bytearray(data)
    for pos, value in zip(positions, values):
        out[pos % len(out)] = value
    return bytes(out)


mutated = st.builds(_flip, st.just(EXAMPLE), st.lists(st.integers(0, 10**6), min_size=1, max_size=8),
                    st.lists(st.integers(0, 255), min_size=1, max_size=8))
dropped = st.lists(st.integers(0, len(LINES) - 1), min_size=1, max_size=6).map(
    lambda drop: b"\n".join(line for i, line in enumerate(LINES) if i not in set(drop)))
replaced = st.tuples(st.integers(0, len(LINES) - 1), st.text(max_size=40)).map(
    lambda t: b"\n".join(LINES[i] if i != t[0] else LINES[i].split(b":")[0] + b": " + t[1].encode("utf-8", "replace")
                         for i in range(len(LINES))))
bombs = st.integers(2, 12).map(lambda n: ("a0: &a0 [x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 8) + "]\n" for i in range(1, n))).encode())
deep = st.integers(30, 400).map(lambda n: (b"[" * n) + (b"]" * n))
huge = st.integers(10_000, 900_000).map(lambda n: b"apiVersion: " + b"x" * n + b"\n")
noise = st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(lambda s: s.encode("utf-8", "surrogatepass")))
bodies = st.one_of(noise, mutated, dropped, replaced, bombs, deep, huge)
media = st.sampled_from(["application/yaml", "application/yaml", "text/yaml", "application/json", "text/plain", ""])


@pytest.fixture(scope="module")
def fuzz_service(config, tmp_path_factory):
    from gcloudctl.controller import compose

    tmp = tmp_path_factory.mktemp("fuzz")
    service = compose.request_service(config, db_url=f"sqlite:///{tmp / 'api.db'}",
                                      environ={"GCLOUDCTL_SECRETS_KEY_FILE": str(tmp / "secrets.key"),
                                               "HOME": str(tmp)})
    yield service
    service.store.dispose()


@pytest.fixture(scope="module")
def fuzz_client(fuzz_service, config):
    app = create_app(fuzz_service, FakeValidator(), agencies=config.agencies, limiter=RateLimiter(rate=0))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=bodies, content_type=media)
def test_fuzzed_bodies_never_5xx_and_store_only_what_they_accept(fuzz_client, fuzz_service, body, content_type):
    before = stored(fuzz_service)
    headers = auth("byt-requester") | ({"Content-Type": content_type} if content_type else {})
    response = fuzz_client.post("/v1/requests", content=body, headers=headers)
    assert response.status_code < 500, response.text[:500]
    after = stored(fuzz_service)
    if response.status_code == 201:
        assert after[0] == before[0] + 1
    else:
        assert 400 <= response.status_code < 500 or response.status_code == 200
        assert response.status_code == 200 or response.headers["content-type"].startswith("application/problem+json")
        assert after == before, f"{response.status_code}: nothing may be stored"
