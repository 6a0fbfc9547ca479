"""Specification of `gcloudctl schema`: the published JSON Schema of each document."""

from __future__ import annotations

import json

import pytest
import yaml

from gcloudctl.cli.main import main

DOCUMENTS = [
    # (document, kind, required top-level fields, a nested field that must be described)
    ("request", "TenantRequest", ["apiVersion", "kind", "metadata", "spec"], "Spec"),
    ("platform", "PlatformCatalog", ["apiVersion", "kind", "metadata", "spec"], "CatalogSpec"),
    ("agencies", "AgencyRegistry", ["apiVersion", "kind", "metadata", "spec"], "RegistrySpec"),
    ("rulebook", "Rulebook", ["apiVersion", "kind", "metadata", "spec"], "RulebookSpec"),
]


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


@pytest.mark.parametrize("document,kind,required,nested", DOCUMENTS, ids=[d[0] for d in DOCUMENTS])
def test_schema_json(document, kind, required, nested, capsys):
    assert main(["schema", document]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$id"].endswith(f"/{document}.json")
    assert schema["required"] == required
    assert schema["properties"]["kind"]["const"] == kind
    assert schema["additionalProperties"] is False, "unknown fields are refused, so the schema says so"
    assert nested in schema["$defs"]
    for ref in refs(schema):
        assert ref.removeprefix("#/$defs/") in schema["$defs"], f"dangling {ref}"


@pytest.mark.parametrize("document", [d[0] for d in DOCUMENTS])
def test_schema_yaml_equals_json(document, capsys):
    assert main(["schema", document, "-o", "json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    assert main(["schema", document, "-o", "yaml"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == as_json


def test_default_document_is_the_request_and_root_output_is_honoured(capsys):
    assert main(["-o", "yaml", "schema"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["properties"]["kind"]["const"] == "TenantRequest"


def test_request_schema_documents_the_fields_users_write(capsys):
    assert main(["schema", "request"]) == 0
    defs = json.loads(capsys.readouterr().out)["$defs"]
    server = defs["Server"]["properties"]
    assert {"name", "count", "flavor", "image", "networks", "floatingIP", "antiAffinity", "userData"} <= set(server)
    assert defs["Network"]["properties"]["cidr"]["anyOf"][0]["format"] == "ipv4network"
    assert defs["Spec"]["properties"]["classification"]["maximum"] == 5


def test_rulebook_schema_lists_checks_and_their_parameters(capsys):
    assert main(["schema", "rulebook"]) == 0
    schema = json.loads(capsys.readouterr().out)
    checks = set(schema["$defs"]["RuleSpec"]["properties"]["check"]["enum"])
    assert checks == set(schema["x-check-params"])
    assert schema["x-check-params"]["world-ingress-ports"]["required"] == ["ports", "zones"]


def test_unknown_document_is_a_usage_error(capsys):
    assert main(["schema", "tenant"]) == 2
    assert "Traceback" not in "".join(capsys.readouterr())
