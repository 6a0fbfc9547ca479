"""Shared set-up for the controller benchmarks: a store, the real pipeline, request texts."""

from __future__ import annotations

import copy
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gcloudctl import pipeline  # noqa: E402
from gcloudctl.controller import approvals  # noqa: E402
from gcloudctl.controller.engine import PipelineEngine  # noqa: E402
from gcloudctl.controller.reconciler import Reconciler  # noqa: E402
from gcloudctl.controller.runner import Runner  # noqa: E402
from gcloudctl.controller.service import RequestService  # noqa: E402
from gcloudctl.controller.store import open_store  # noqa: E402
from gcloudctl.model.identity import Caller, GcloudRole  # noqa: E402

EXAMPLE = ROOT / "examples" / "byt-his-staging.yaml"
APPROVERS = {"BYT": ("tran.thi.b", "le.van.c"), "BTC": ("hoang.van.e", "vu.thi.f"), "QNI": ("do.van.g", "ngo.thi.h")}


def person(agency: str, name: str, role: GcloudRole) -> Caller:
    """A benchmark caller of `agency` (the use cases take Keystone identities; these are stand-ins)."""
    return Caller(user_id=f"bench-{agency}-{name}", user_name=name, domain_name=agency, roles=frozenset({role}),
                  agency=agency)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def tenant_text(name: str, *, agency: str = "BYT", servers: int = 0, router: bool = False,
                drift_policy: str = "enforce") -> str:
    """The example request, renamed; networks allocated from the agency pool; `servers` web servers."""
    doc = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    doc["metadata"].update(name=name, agency=agency)
    spec = doc["spec"]
    spec["driftPolicy"] = drift_policy
    spec["networks"] = [{"name": "app", "zone": "app", "prefixLength": 26}]  # 1,024 per /16 agency pool
    if not router:
        spec.pop("router", None)
    spec["servers"] = [{"name": "web", "count": servers, "flavor": "g1.small", "image": "debian-12-hardened",
                        "networks": ["app"], "securityGroups": ["web"], "keypair": "ops"}] if servers else []
    return yaml.safe_dump(doc, sort_keys=False)


def build(db_url: str, driver_for_region, *, interval: float = 60.0, workers: int = 4, clock=utcnow):
    config = pipeline.Config.load()
    store = open_store(db_url)
    engine = PipelineEngine(config, driver_for_region)
    service = RequestService(store, config.agencies, approvals.parse_rules(approvals.default_rules_text()),
                             lambda text, name: pipeline.load_request(text, config, filename=name), clock)
    runner = Runner(store, Reconciler(store, engine, holder="bench", interval=interval, clock=clock),
                    clock=clock, workers=workers, claim_poll=0.2)
    return config, store, engine, service, runner


def submit_approved(service, text: str, agency: str = "BYT") -> str:
    version = service.submit(text, caller=person(agency, "requester", GcloudRole.REQUESTER))
    for approver in APPROVERS[agency][: version["approvalsRequired"]]:
        service.approve(version["id"], caller=person(agency, approver, GcloudRole.APPROVER), reason="benchmark")
    return version["tenant"]


def delete_approved(service, name: str, agency: str = "BYT") -> None:
    """File the deletion of `name` and give it the approvals it needs."""
    version = service.delete(name, caller=person(agency, "requester", GcloudRole.REQUESTER), reason="benchmark done")
    for approver in APPROVERS[agency][: version["approvalsRequired"]]:
        service.approve(version["id"], caller=person(agency, approver, GcloudRole.APPROVER), reason="benchmark done")
