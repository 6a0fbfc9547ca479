"""The controller: request intake with approvals, continuous reconciliation, audit, HA.

Stage: controller (`load -> observe -> plan -> apply -> write status -> requeue / back off / stop`).
Modules, by stage:

- `lifecycle`  — phases of a tenant and states of a request version, as transition tables (pure).
- `approvals`  — approval rules (data, `approval_rules.yaml`) and their evaluation (pure).
- `conditions` — Ready / Synced / Drifted conditions with Kubernetes-style transition times (pure).
- `audit`      — canonical JSON, hash chain, secret masking, chain verification (pure).
- `backoff`    — exponential backoff with jitter (pure; random source injected).
- `store`      — SQLAlchemy tables and the only code that talks to the database.
- `service`    — use cases behind `gcloudctl request ...`, `status`, `audit ...`.
- `engine`     — the port to the core pipeline (plan/apply/destroy) and its adapter.
- `reconciler` — reconcile one tenant: read state, plan, apply or report, write status.
- `runner`     — the loop: claim leased work, run N workers, heartbeat leases.
- `metrics`    — Prometheus metrics and the loopback /metrics + /healthz server.

Only `gcloudctl.drivers` talks to clouds; this package reaches them through `gcloudctl.pipeline`.
"""
