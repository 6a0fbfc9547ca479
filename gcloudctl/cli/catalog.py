"""CLI: `gcloudctl catalog regions|flavors|images|zones|agencies` — what a request may name,
read from the platform catalog and the agency registry, so nobody has to read their YAML.

Stage: edge. Thin: the rows are built by `catalog_rows` (pure, from the loaded documents) and
rendered as a table, JSON or YAML (schemas: `gcloudctl schema catalog-<what>`). It must not
talk to a cloud: the catalog is what platform operators publish, not what a cloud reports.
"""

from __future__ import annotations

import click

from gcloudctl.cli.context import AppContext
from gcloudctl.cli.render import emit, table
from gcloudctl.errors import ExitCode
from gcloudctl.i18n import gettext as _

WHAT = ("regions", "flavors", "images", "zones", "agencies")


def catalog_rows(what: str, catalog, registry) -> list[dict]:
    """One dict per entry, sorted by name; every entry has `name`."""
    spec = catalog.spec
    if what == "regions":
        return [{"name": name, "cloud": r.cloud, "externalNetworks": list(r.externalNetworks),
                 "maxClassification": r.maxClassification, "blockStorage": r.blockStorage,
                 "antiAffinityPolicy": r.antiAffinityPolicy, "allowedRoles": list(r.allowedRoles)}
                for name, r in sorted(spec.regions.items())]
    if what == "flavors":
        return [{"name": name, "vcpus": f.vcpus, "ramMiB": f.ramMiB, "diskGiB": f.diskGiB,
                 "maxClassification": f.maxClassification}
                for name, f in sorted(spec.flavors.items(), key=lambda kv: (kv[1].vcpus, kv[1].ramMiB, kv[0]))]
    if what == "images":
        return [{"name": name, "os": i.os, "loginUser": i.loginUser, "maxClassification": i.maxClassification}
                for name, i in sorted(spec.images.items())]
    if what == "zones":
        return [{"name": zone} for zone in spec.zones]
    return [{"name": a.name, "code": code, "domain": registry.domain_of(code),
             "maxClassification": a.maxClassification, "cidrPools": [str(p) for p in a.cidrPools],
             "quotaCeilings": a.quotaCeilings.model_dump()}
            for code, a in sorted(registry.spec.agencies.items())]


def _human(what: str, rows: list[dict]) -> str:
    if not rows:
        return _("Nothing in the catalog.")
    if what == "regions":
        return table([_("REGION"), _("CLOUD"), _("EXTERNAL NETWORKS"), _("MAX LEVEL"), _("BLOCK STORAGE")],
                     [[r["name"], r["cloud"], ", ".join(r["externalNetworks"]), r["maxClassification"],
                       _("yes") if r["blockStorage"] else _("no")] for r in rows])
    if what == "flavors":
        return table([_("FLAVOR"), "VCPUS", "RAM (MiB)", _("DISK (GiB)"), _("MAX LEVEL")],
                     [[r["name"], r["vcpus"], r["ramMiB"], r["diskGiB"], r["maxClassification"]] for r in rows])
    if what == "images":
        return table([_("IMAGE"), "OS", _("LOGIN USER"), _("MAX LEVEL")],
                     [[r["name"], r["os"], r["loginUser"], r["maxClassification"]] for r in rows])
    if what == "zones":
        return table([_("ZONE")], [[r["name"]] for r in rows])
    return table([_("CODE"), _("AGENCY"), _("DOMAIN"), _("MAX LEVEL"), _("CIDR POOLS")],
                 [[r["code"], r["name"], r["domain"], r["maxClassification"], ", ".join(r["cidrPools"])]
                  for r in rows])


@click.group("catalog")
def catalog_group() -> None:
    """What requests may use: regions, flavors, images, zones, agencies (from the platform
    catalog and the agency registry)."""


def _command(what: str, doc: str) -> click.Command:
    @catalog_group.command(what, help=doc)
    @click.pass_obj
    def command(app: AppContext) -> int:
        config = app.config()
        rows = catalog_rows(what, config.catalog, config.agencies)
        emit(app.output, rows, lambda: _human(what, rows))
        return ExitCode.OK

    return command


for _what, _doc in (("regions", "Regions, their cloud, external networks and highest level."),
                    ("flavors", "Server sizes: vCPUs, RAM, disk, highest level."),
                    ("images", "Server images: operating system, login user, highest level."),
                    ("zones", "Network zones a request's networks may be in."),
                    ("agencies", "Agencies of the registry: code, name, domain, highest level, CIDR pools.")):
    _command(_what, _doc)


def register(cli: click.Group) -> None:
    """Attach this area's commands to the root group."""
    cli.add_command(catalog_group)
