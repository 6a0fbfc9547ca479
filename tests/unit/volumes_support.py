"""Shared helpers of the volume tests: a catalog whose region has block storage and the two
volume types devcloud's Cinder offers, the example request with a database volume, and the
in-memory cloud with Cinder switched on."""

from __future__ import annotations

import copy

import yaml

from gcloudctl import pipeline
from gcloudctl.drivers.fake import FakeApi, FakeCloud
from gcloudctl.model.catalog import PlatformCatalog

VOLUME_TYPES = {"standard": {"encrypted": False, "maxClassification": 2},
                "encrypted": {"encrypted": True, "maxClassification": 4}}


def block_storage_config(config: pipeline.Config, *, block_storage: bool = True) -> pipeline.Config:
    """`config` with region hn1 on block storage and the catalog's volume types."""
    data = config.catalog.model_dump(mode="json")
    data["spec"]["regions"]["hn1"]["blockStorage"] = block_storage
    data["spec"]["volumeTypes"] = copy.deepcopy(VOLUME_TYPES)
    return pipeline.Config(catalog=PlatformCatalog.model_validate(data), agencies=config.agencies,
                           rulebook=config.rulebook)


def with_db_volume(doc: dict, *, size: int = 20, vtype: str = "standard", count: int = 1) -> dict:
    """The example with a `data` volume on its db server (quotas omitted: derived)."""
    doc = copy.deepcopy(doc)
    doc["spec"].pop("quotas", None)
    db = next(s for s in doc["spec"]["servers"] if s["name"] == "db")
    db["count"] = count
    db["volumes"] = [{"name": "data", "sizeGiB": size, "type": vtype, "mountPoint": "/var/lib/postgresql"}]
    return doc


def request_text(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def cinder_cloud() -> tuple[FakeApi, FakeCloud]:
    api = FakeApi(block_storage=True)
    return api, FakeCloud(api)


# The staging example with its database on a volume: examples/byt-his-db-volume.yaml once the
# shipped catalog's hn1 has `blockStorage: true` (until then `gcloudctl validate examples/` would
# refuse it, rightly: volumes in a region without block storage are an error).
DB_VOLUME_EXAMPLE = """\
# The staging example with its database on a block-storage volume (docs/request-format.md, "Volumes").
# Needs a region with blockStorage: true and the catalog's volume types.
apiVersion: gcloud.gov.vn/v1
kind: TenantRequest
metadata:
  name: byt-his-db
  agency: BYT
  requester: nguyen.van.a
  description: Hospital information system, staging, with its database on a volume
  labels: {environment: staging, costCenter: HIS-2026}
spec:
  classification: 2
  region: hn1
  quotas: {instances: 10, cores: 32, ramMiB: 65536, floatingIPs: 2, volumes: 4, volumeGiB: 200, snapshots: 0}
  members:
    - {user: nguyen.van.a, roles: [member]}
  networks:
    - {name: app, cidr: 10.40.1.0/24, zone: app}
    - {name: db, zone: db}
  router: {externalNetwork: public}
  securityGroups:
    - name: web
      rules:
        - {direction: ingress, protocol: tcp, ports: "443", remote: 0.0.0.0/0}
        - {direction: ingress, protocol: tcp, ports: "22", remoteGroup: web}
    - name: db
      rules:
        - {direction: ingress, protocol: tcp, ports: "5432", remoteGroup: web}
  keypairs:
    - {name: ops, publicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBATrWvJFs40A9Ecu0FM1w8WJcG4ol86jgNzS7I9TMW0 ops@byt"}
  servers:
    - {name: web, count: 2, flavor: g1.small, image: debian-12-hardened, networks: [app],
       securityGroups: [web], keypair: ops, floatingIP: true, antiAffinity: true,
       userData: {template: default.yaml.j2, vars: {}}}
    - name: db
      count: 1
      flavor: g1.medium
      image: debian-12-hardened
      networks: [db]
      securityGroups: [db]
      keypair: ops
      # One volume per copy of the server (db-1-data), attached to it; it may grow, never shrink.
      # Level 2 may use `standard`; from level 3 the rulebook wants an encrypted type.
      volumes:
        - {name: data, sizeGiB: 50, type: standard, mountPoint: /var/lib/postgresql}
"""
