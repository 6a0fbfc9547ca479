"""The compliance dossier of a tenant: what an inspector reads (HTML) or a machine checks (JSON).

- `model`: the dossier's shape (pydantic; `gcloudctl schema compliance` is its JSON Schema);
- `dossier`: the pure builder (inputs in, `Dossier` out; no I/O, no clock);
- `evidence`: reading audit-hosts JSON reports from a directory (file I/O only);
- `render`: HTML (jinja2, autoescaped, Vietnamese through `gcloudctl.i18n` domain `compliance`)
  and JSON.
The CLI (`gcloudctl.cli.compliance`) gathers the inputs (request, observation, controller store,
evidence) and writes the files.
"""
