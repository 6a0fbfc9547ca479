#!/usr/bin/env python3
"""What the seal check costs the controller per tenant (no cloud needed).

N approved tenants and a chain padded to R audit records in a SQLite store; then the
reconciler's read of every tenant (`Reconciler._read`: version, approvals, their audit records
and links, the chain witness), timed three ways: the first pass (the witness verifies the whole
chain once), a pass after K new records (incremental), and — for comparison — a full chain
verification per tenant (what the check must not cost).

    python bench/controller_seal_cost.py [--tenants 300] [--records 50000] [--appended 500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402
from controller_common import person, tenant_text  # noqa: E402

from gcloudctl import pipeline  # noqa: E402
from gcloudctl.controller import approvals, audit  # noqa: E402
from gcloudctl.controller.reconciler import Reconciler  # noqa: E402
from gcloudctl.controller.service import RequestService, utcnow  # noqa: E402
from gcloudctl.controller.store import open_store  # noqa: E402
from gcloudctl.model import TenantRequest  # noqa: E402
from gcloudctl.model.identity import GcloudRole  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=300)
    parser.add_argument("--records", type=int, default=50_000, help="pad the audit chain to this many records")
    parser.add_argument("--appended", type=int, default=500, help="records appended between the two passes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = pipeline.Config.load()
        store = open_store(f"sqlite:///{Path(tmp) / 'controller.db'}")
        # schema-only loading: the seal check is what is measured, not validation
        service = RequestService(store, config.agencies, approvals.parse_rules(approvals.default_rules_text()),
                                 lambda text, name: TenantRequest.model_validate(yaml.safe_load(text)))
        requester = person("BYT", "requester", GcloudRole.REQUESTER)
        approvers = [person("BYT", name, GcloudRole.APPROVER) for name in ("a1", "a2")]
        names = []
        for i in range(args.tenants):
            version = service.submit(tenant_text(f"seal-{i:04d}", servers=0), caller=requester)
            for approver in approvers[: version["approvalsRequired"]]:
                service.approve(version["id"], caller=approver, reason="bench")
            names.append(version["tenant"])
        pad(store, args.records - store_head(store))
        reconciler = Reconciler(store, engine=None, holder="bench", clock=utcnow)

        def one_pass() -> float:
            started = time.perf_counter()
            for name in names:
                assert not reconciler._read(name).tampered
            return time.perf_counter() - started

        first = one_pass()
        pad(store, args.appended)
        second = one_pass()
        steady = one_pass()
        started = time.perf_counter()
        for _ in range(5):
            with store.tx() as tx:
                assert not audit.verify(list(tx.audit_records()), tx.audit_head())
        full_each = (time.perf_counter() - started) / 5
        result = {
            "tenants": args.tenants, "chain_records": store_head(store),
            "first_pass_s": round(first, 3), "first_pass_ms_per_tenant": round(1000 * first / args.tenants, 2),
            f"pass_after_{args.appended}_new_records_ms_per_tenant": round(1000 * second / args.tenants, 2),
            "steady_pass_ms_per_tenant": round(1000 * steady / args.tenants, 2),
            "records_verified_total": reconciler.witness.records_verified,
            "full_verifications": reconciler.witness.full_verifications,
            "one_full_chain_verification_s": round(full_each, 3),
            "naive_full_verification_per_tenant_pass_s": round(full_each * args.tenants, 1),
        }
        store.dispose()
    print(json.dumps(result, indent=2))


def store_head(store) -> int:
    with store.tx() as tx:
        return tx.audit_head()[0]


def pad(store, count: int) -> None:
    """Append `count` unrelated records (as a busy controller's apply records would be)."""
    for start in range(0, max(count, 0), 1000):
        with store.tx() as tx:
            for i in range(start, min(start + 1000, count)):
                tx.append_audit(utcnow(), "bench", "tenant.apply", f"other-{i % 97}", {"i": i})


if __name__ == "__main__":
    main()
