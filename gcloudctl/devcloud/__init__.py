"""devcloud: a real all-in-one OpenStack on this machine (Keystone, Placement, Glance, Nova, Neutron).

Stage: tooling around the product, not part of the provisioning pipeline. The OpenStack
services run from their own virtualenv under the devcloud dir; gcloudctl talks to them only
over HTTP like any other cloud.

Pure modules (values in, values out; no files, processes, network or clock):
  layout     where everything lives under the devcloud dir, ports, database names
  services   the service table: what runs, in which phase, how it is probed
  config     renders every service's config files from the layout and secrets
  readiness  decides "ready / starting / failed" from probe results
  catalog    what bootstrap creates (flavors, images, networks, users) and clouds.yaml entries
Effects (the edges):
  system     MariaDB / RabbitMQ: reuse the running ones or install them from Debian
  install    services venv from the lock file, plugins, database init
  supervisor start / stop / inspect processes by pid file and process group
  rest       a minimal Keystone-authenticated JSON client (stdlib only)
  bootstrap  idempotent creation of identity, catalog, flavors, images, networks
  lifecycle  the facade used by the CLI and the pytest fixture: up, status, down, logs
"""
