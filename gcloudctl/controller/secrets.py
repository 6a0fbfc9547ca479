"""Stage: controller (intake and reconcile). Secret `userData.vars` values sealed at rest.

At submit, `VarSealer.seal` replaces the *source text* of every value under a secret-looking key
(the audit module's secret-key pattern: password, token, secret, ...) anywhere below a server's
`userData.vars` with one quoted token, `"gcloudctl-sealed:v1:<Fernet token>"`. The stored text
(`requests.raw_yaml`) therefore never holds the value in clear, and its sha256 — the digest the
approvals bind — covers the sealed text, so tampering with a token is caught like any other edit.
The Fernet plaintext is the tenant name and the exact source slice, so `unseal(seal(text)) == text`
byte for byte, and a token copied into another tenant's request does not open there.

`mask` shows a stored text with every token as `***` (`request show`). Called by `service`
(seal, mask) and the `reconciler` (unseal, before loading the request to apply). The key comes
from the server's configuration (`key_source`, assembled by `compose`): never from the caller.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import yaml
from cryptography.fernet import Fernet, InvalidToken

from gcloudctl.controller.audit import is_secret_key
from gcloudctl.errors import GcloudctlError, InvalidInput

PREFIX = "gcloudctl-sealed:v1:"
_TOKEN = re.compile(r'"gcloudctl-sealed:v1:([A-Za-z0-9_\-=]+)"')
MASKED = '"***"'


class SecretsKeyError(GcloudctlError):
    """The secrets key is missing or does not open a sealed value (a configuration error)."""


@dataclass
class VarSealer:
    """Seals and unseals secret vars with the key `key_source()` returns (created on first use
    by a file source; see `key_file_source`)."""

    key_source: Callable[[bool], bytes]  # (create_if_missing) -> Fernet key

    def seal(self, text: str, tenant: str) -> tuple[str, int]:
        """The text with every secret var value sealed, and how many were sealed."""
        if PREFIX in text:
            raise InvalidInput(f"the request contains the reserved marker {PREFIX!r}",
                               hint="submit the values themselves; the server seals secret vars")
        spans = list(_secret_spans(text))
        if not spans:
            return text, 0
        fernet = Fernet(self.key_source(True))
        out, cursor = [], 0
        for start, end in spans:
            plain = json.dumps({"t": tenant, "v": text[start:end]}, ensure_ascii=False).encode("utf-8")
            out += [text[cursor:start], f'"{PREFIX}{fernet.encrypt(plain).decode("ascii")}"']
            cursor = end
        out.append(text[cursor:])
        return "".join(out), len(spans)

    def unseal(self, text: str, tenant: str) -> str:
        """The submitted text back (raises `SecretsKeyError` when the key does not open it)."""
        if PREFIX not in text:
            return text
        fernet = Fernet(self.key_source(False))

        def _open(match: re.Match) -> str:
            try:
                value = json.loads(fernet.decrypt(match.group(1).encode("ascii")))
            except (InvalidToken, ValueError):
                raise SecretsKeyError(f"{tenant}: a sealed var does not open with the configured secrets key",
                                      hint="configure the key the request server used (GCLOUDCTL_SECRETS_KEY)") from None
            if value.get("t") != tenant:
                raise SecretsKeyError(f"{tenant}: a sealed var belongs to another tenant")
            return value["v"]

        return _TOKEN.sub(_open, text)


def mask(text: str) -> str:
    """A stored text for display: sealed values as `"***"`."""
    return _TOKEN.sub(MASKED, text)


def sealed(text: str) -> bool:
    return PREFIX in text


def has_secret_vars(text: str) -> bool:
    return next(_secret_spans(text), None) is not None


# --- where the secret values are -----------------------------------------------------------------

def _secret_spans(text: str) -> Iterator[tuple[int, int]]:
    """Source (start, end) offsets of secret var values, in order, trailing blanks left out."""
    if "vars" not in text:
        return  # no userData.vars anywhere: nothing to parse again
    try:
        root = yaml.compose(text, Loader=_COMPOSER)  # libyaml where built: marks carry source offsets too
    except yaml.YAMLError:
        return  # the loader has already refused it; nothing to seal
    found = []
    for vars_node in _vars_nodes(root):
        found += _secret_values(vars_node)
    for node in sorted(found, key=lambda n: n.start_mark.index):
        start, end = node.start_mark.index, node.end_mark.index
        while end > start and text[end - 1] in " \t\r\n":
            end -= 1
        yield start, end


_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _get(node, key: str):
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _vars_nodes(root) -> Iterator:
    servers = _get(_get(root, "spec"), "servers")
    if not isinstance(servers, yaml.SequenceNode):
        return
    for server in servers.value:
        node = _get(_get(server, "userData"), "vars")
        if isinstance(node, yaml.MappingNode):
            yield node


def _secret_values(mapping) -> list:
    values = []
    for key, value in mapping.value:
        if isinstance(key, yaml.ScalarNode) and is_secret_key(key.value):
            if not _empty(value):
                values.append(value)
        elif isinstance(value, yaml.MappingNode):
            values += _secret_values(value)
    return values


def _empty(node) -> bool:
    """An empty string or a null: nothing to hide (and nothing to seal)."""
    if not isinstance(node, yaml.ScalarNode):
        return False
    return node.value == "" or (not node.style and node.value in ("~", "null", "Null", "NULL"))


# --- the key ----------------------------------------------------------------------------------

def env_or_file_source(environ: dict[str, str], key_file: Path) -> Callable[[bool], bytes]:
    """$GCLOUDCTL_SECRETS_KEY (a Fernet key), else the key file (created 0600 on first use)."""
    def source(create: bool) -> bytes:
        if environ.get("GCLOUDCTL_SECRETS_KEY"):
            key = environ["GCLOUDCTL_SECRETS_KEY"].strip().encode("ascii")
            _check_key(key, "GCLOUDCTL_SECRETS_KEY")
            return key
        return _read_or_create(key_file, create)

    return source


def _check_key(key: bytes, where: str) -> None:
    try:
        Fernet(key)
    except ValueError:
        raise SecretsKeyError(f"{where}: not a Fernet key (32 url-safe base64-encoded bytes)",
                              hint="create one with: python -c 'from cryptography.fernet import Fernet; "
                                   "print(Fernet.generate_key().decode())'") from None


def _read_or_create(path: Path, create: bool) -> bytes:
    path = path.expanduser()
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        if not create:
            raise SecretsKeyError(f"the secrets key {path} does not exist, so sealed vars cannot be opened",
                                  hint="set GCLOUDCTL_SECRETS_KEY (or GCLOUDCTL_SECRETS_KEY_FILE) to the key "
                                       "the request server uses") from None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Fernet.generate_key()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
        except FileExistsError:  # another process created it just now
            return _read_or_create(path, False)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
        return key
    _check_key(key, str(path))
    return key
