"""SSH for the git reader: paramiko in place of an `ssh` binary, host keys always verified.

The charm's container has no `ssh` command, so dulwich runs `git-upload-pack` through paramiko.
Host keys are checked against the configured known_hosts lines only: never auto-added, never
read from the machine. A missing or different host key raises `HostKeyError` with the key the
server offered, so the administrator can verify its fingerprint and add it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paramiko
from dulwich.client import SSHVendor
from paramiko.hostkeys import HostKeyEntry

from profiles_automator.sources.errors import FetchError, HostKeyError

logger = logging.getLogger(__name__)

_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)


@dataclass(frozen=True)
class SSHTimeouts:
    """Seconds to wait for the TCP connection and banner, and for each read afterwards."""

    connect: float
    read: float


def fingerprint(key: paramiko.PKey) -> str:
    """The key's SHA256 fingerprint as OpenSSH prints it (``SHA256:...``)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def describe_key(key: paramiko.PKey) -> str:
    """``ssh-ed25519 SHA256:...``: what an administrator compares with the host's admin."""
    return f"{key.get_name()} {fingerprint(key)}"


def load_private_key(text: str) -> paramiko.PKey:
    """Parse an unencrypted private key (OpenSSH or PEM form) of any type paramiko knows.

    Raises:
        FetchError: the text is not such a key (the message never contains the key).
    """
    text = text.strip().replace("\r\n", "\n") + "\n"
    if "PRIVATE KEY-----" not in text:
        raise FetchError(
            "the SSH key is not a private key: store the whole private key file (the one "
            "starting with -----BEGIN OPENSSH PRIVATE KEY-----), not the .pub public key"
        )
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text))
        except paramiko.PasswordRequiredException:
            raise FetchError(
                "the SSH key is protected by a passphrase: store a deploy key without one "
                "(ssh-keygen -t ed25519 -N '' -f deploy-key)"
            ) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise FetchError(
        "the SSH key could not be read: store an unencrypted Ed25519, ECDSA or RSA private key "
        "in OpenSSH or PEM form"
    )


def parse_known_hosts(text: str) -> paramiko.HostKeys:
    """Read OpenSSH known_hosts lines (hashed or not); comments and markers are skipped.

    Raises:
        FetchError: no line holds a usable host key.
    """
    keys = paramiko.HostKeys()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = HostKeyEntry.from_line(line, lineno)
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            entry = None
        if entry is None or entry.key is None:
            logger.warning("known hosts line %d is not a host key line; ignored", lineno)
            continue
        for hostname in entry.hostnames:
            keys.add(hostname, entry.key.get_name(), entry.key)
    if not keys:
        raise FetchError(
            "the known hosts hold no host key: add the server's key lines in known_hosts form "
            "(`ssh-keyscan HOST` prints them; check them against the host's published "
            "fingerprints)"
        )
    return keys


def known_hosts_name(host: str, port: int) -> str:
    """How known_hosts names a host: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


class _RejectUnknownHost(paramiko.MissingHostKeyPolicy):
    """Refuse a host that known_hosts does not list, saying which key it offered."""

    def __init__(self, keys: paramiko.HostKeys, port: int) -> None:
        self._keys = keys
        self._port = port

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        hostname = _bare_host(hostname)
        name = known_hosts_name(hostname, self._port)
        listed = self._keys.lookup(name)
        offered = describe_key(key)
        if listed:
            types = ", ".join(sorted(listed.keys()))
            raise HostKeyError(
                f"the host key of {name} is not in the known hosts: it offered {offered}, but "
                f"the known hosts list only {types} keys for it; add its {key.get_name()} key "
                f"after checking the fingerprint (ssh-keyscan -t {key.get_name()} "
                f"{_keyscan_target(hostname, self._port)})",
                host=name,
                offered=offered,
                expected=None,
            )
        raise HostKeyError(
            f"the host key of {name} is not in the known hosts: it offered {offered}; check "
            "that fingerprint with the server's administrator (or its published fingerprints), "
            f"then add the key line (ssh-keyscan {_keyscan_target(hostname, self._port)}) to "
            "the known hosts",
            host=name,
            offered=offered,
            expected=None,
        )


def mismatch_error(exc: paramiko.BadHostKeyException, port: int) -> HostKeyError:
    """Explain a host key that differs from the one known_hosts expects."""
    name = known_hosts_name(_bare_host(str(exc.hostname)), port)
    offered = describe_key(exc.key)
    expected = describe_key(exc.expected_key)
    return HostKeyError(
        f"the host key of {name} does NOT match the known hosts: it offered {offered}, the "
        f"known hosts expect {expected}; nothing was read. If the server's key was really "
        "changed, verify the new fingerprint with its administrator and replace the known "
        "hosts line; otherwise someone may be intercepting the connection",
        host=name,
        offered=offered,
        expected=expected,
    )


class _ChannelFile:
    """The socket-like object dulwich's SSH client reads and writes (like SubprocessWrapper)."""

    def __init__(
        self, client: paramiko.SSHClient, channel: paramiko.Channel, check: Callable[[], None]
    ) -> None:
        self._client = client
        self._channel = channel
        self._check = check
        self.stderr = _StderrReader(channel)

    def read(self, n: int = -1) -> bytes:
        chunks: list[bytes] = []
        wanted = n if n >= 0 else 1 << 62
        while wanted > 0:
            self._check()
            chunk = self._channel.recv(min(wanted, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def write(self, data: bytes) -> int:
        self._channel.sendall(data)
        return len(data)

    def can_read(self) -> bool:
        return self._channel.recv_ready()

    def shutdown_write(self) -> None:
        self._channel.shutdown_write()

    def close(self) -> None:
        self._channel.close()
        self._client.close()


class _StderrReader:
    """The remote command's stderr, read once it ends (for dulwich's error messages)."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._channel = channel

    def readlines(self) -> list[bytes]:
        data = b""
        try:
            while chunk := self._channel.recv_stderr(65536):
                data += chunk
                if len(data) > 65536:
                    break
        except (TimeoutError, OSError):
            pass
        return data.splitlines(keepends=True)


class ParamikoSSHVendor(SSHVendor):
    """Run git's commands over SSH with one key and a strict known_hosts check."""

    def __init__(
        self,
        *,
        key: paramiko.PKey,
        known_hosts: paramiko.HostKeys,
        timeouts: Callable[[], SSHTimeouts],
        check: Callable[[], None],
    ) -> None:
        self._key = key
        self._known_hosts = known_hosts
        self._timeouts = timeouts
        self._check = check

    def run_command(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        host: str,
        command: bytes | str,
        username: str | None = None,
        port: int | None = None,
        password: str | None = None,
        key_filename: str | None = None,
        ssh_command: str | None = None,
        protocol_version: int | None = None,
        **_: Any,
    ) -> _ChannelFile:
        """Connect, verify the host key, authenticate with the key and start `command`."""
        port = port or 22
        timeouts = self._timeouts()
        client = paramiko.SSHClient()
        for name in self._known_hosts:
            for key_type, key in self._known_hosts.lookup(name).items():  # type: ignore[union-attr]
                client.get_host_keys().add(name, key_type, key)
        client.set_missing_host_key_policy(_RejectUnknownHost(self._known_hosts, port))
        try:
            client.connect(
                host,
                port=port,
                username=username,
                pkey=self._key,
                timeout=timeouts.connect,
                banner_timeout=timeouts.connect,
                auth_timeout=timeouts.read,
                channel_timeout=timeouts.read,
                allow_agent=False,
                look_for_keys=False,
            )
            transport = client.get_transport()
            assert transport is not None
            channel = transport.open_session(timeout=timeouts.read)
            channel.settimeout(timeouts.read)
            if protocol_version == 2:
                # Like OpenSSH's SendEnv GIT_PROTOCOL: servers that accept it answer in v2.
                channel.set_environment_variable("GIT_PROTOCOL", "version=2")
            text = command.decode("utf-8") if isinstance(command, bytes) else command
            channel.exec_command(text)
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise mismatch_error(exc, port) from None
        except BaseException:
            client.close()
            raise
        return _ChannelFile(client, channel, self._check)


def _bare_host(name: str) -> str:
    """``host`` from paramiko's ``[host]:port`` (or plain ``host``) spelling."""
    if name.startswith("[") and "]" in name:
        return name[1:].split("]", 1)[0]
    return name


def _keyscan_target(host: str, port: int) -> str:
    return host if port == 22 else f"-p {port} {host}"
