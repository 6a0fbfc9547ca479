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
