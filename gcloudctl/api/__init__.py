"""The request API: an HTTP edge beside `gcloudctl.cli` (FastAPI under uvicorn).

It parses, authenticates (Keystone tokens, `auth`), limits (`limits`), calls the same use cases
as the CLI's direct mode (`gcloudctl.controller.service.RequestService`) and renders
(`problems` for errors as RFC 9457 problem+json). It holds no business rules: the service
decides what a `Caller` may do. `app.create_app` builds the ASGI app from injected parts;
`server` is the composition root behind `gcloudctl api serve`; `client` is what the CLI uses
when `--api URL` / `$GCLOUDCTL_API` is set. See docs/api.md.
"""
