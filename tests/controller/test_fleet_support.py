"""Shared set-up (no tests here) for the fleet-observation tests and `bench/controller_cycle.py`:
an agency registry with one agency of our own (`BCH`, domain `BCH`, large ceilings: the other
suites' agencies BYT/BTC/QNI and their quota totals are never touched), cheap tenant requests
(a network with its subnet, a router, a security group; no servers) and the controller stack
over the real pipeline with or without fleet observation."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import yaml

from gcloudctl import pipeline
from gcloudctl.controller import approvals
from gcloudctl.controller.engine import PipelineEngine
from gcloudctl.controller.reconciler import Reconciler
from gcloudctl.controller.runner import Runner
from gcloudctl.controller.service import RequestService
from gcloudctl.controller.store import open_store
from gcloudctl.drivers.openstack_fleet import fleet_observer
from gcloudctl.model.identity import Caller, GcloudRole

AGENCY = "BCH"
PREFIX = "fleet-c-"

REGISTRY = {
    "apiVersion": "gcloud.gov.vn/v1", "kind": "AgencyRegistry",
    "metadata": {"name": "fleet-bench-agencies", "version": "1"},
    "spec": {"agencies": {AGENCY: {
        "name": "Fleet benchmark agency", "domain": AGENCY, "maxClassification": 3,
        "cidrPools": ["10.96.0.0/12"],
        "quotaCeilings": {"instances": 100000, "cores": 100000, "ramMiB": 100000000, "floatingIPs": 100000,
                          "volumes": 100000, "volumeGiB": 10000000}}}},
}


def write_registry(folder: Path) -> Path:
    path = folder / "fleet-agencies.yaml"
    path.write_text(yaml.safe_dump(REGISTRY, sort_keys=False))
    return path


def config(folder: Path) -> pipeline.Config:
    return pipeline.Config.load(agencies_file=write_registry(folder))


def tenant_text(name: str, *, sg_port: int = 443) -> str:
    """A cheap tenant of agency BCH: one /27 network (allocated from the pool), a router, a group."""
    doc = {
        "apiVersion": "gcloud.gov.vn/v1", "kind": "TenantRequest",
        "metadata": {"name": name, "agency": AGENCY, "requester": "fleet.requester",
                     "description": "fleet observation benchmark tenant"},
        "spec": {
            "classification": 1, "region": "hn1",
            "quotas": {"instances": 1, "cores": 1, "ramMiB": 1024, "floatingIPs": 0, "volumes": 0, "volumeGiB": 0},
            "members": [{"user": "fleet.member", "roles": ["member"]}],
            "networks": [{"name": "app", "zone": "app", "prefixLength": 27}],
            "router": {"externalNetwork": "public"},
            "securityGroups": [{"name": "web", "rules": [
                {"direction": "ingress", "protocol": "tcp", "ports": str(sg_port), "remote": "10.0.0.0/8"}]}],
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


def person(name: str, role: GcloudRole) -> Caller:
    return Caller(user_id=f"fleet-{name}", user_name=name, domain_name=AGENCY, roles=frozenset({role}),
                  agency=AGENCY)


REQUESTER = person("fleet.requester", GcloudRole.REQUESTER)
APPROVERS = (person("fleet.approver1", GcloudRole.APPROVER), person("fleet.approver2", GcloudRole.APPROVER))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Stack:
    """Store, request service, engine and runner over one driver; `fleet=True`: fleet observation."""

    def __init__(self, db_url: str, cfg: pipeline.Config, driver, *, fleet: bool, quota_every: int = 10,
                 workers: int = 4, clock=utcnow, max_age: float = 3600.0):
        self.config, self.driver = cfg, driver
        self.store = open_store(db_url)
        factory = (lambda d: fleet_observer(d, quota_every=quota_every, max_age=max_age)) if fleet else None
        self.engine = PipelineEngine(cfg, lambda region: driver, fleet=factory)
        self.service = RequestService(self.store, cfg.agencies, approvals.parse_rules(approvals.default_rules_text()),
                                      lambda text, name: pipeline.load_request(text, cfg, filename=name), clock)
        self.runner = Runner(self.store, Reconciler(self.store, self.engine, holder="fleet", interval=60, clock=clock),
                             clock=clock, workers=workers, claim_poll=0.2, on_cycle=self.engine.begin_cycle)

    def submit(self, name: str, **kw) -> None:
        version = self.service.submit(tenant_text(name, **kw), caller=REQUESTER)
        for approver in APPROVERS[: version["approvalsRequired"]]:
            self.service.approve(version["id"], caller=approver, reason="fleet test")

    def delete(self, name: str) -> None:
        version = self.service.delete(name, caller=REQUESTER, reason="fleet test done")
        for approver in APPROVERS[: version["approvalsRequired"]]:
            self.service.approve(version["id"], caller=approver, reason="fleet test done")

    def close(self) -> None:
        self.store.dispose()
