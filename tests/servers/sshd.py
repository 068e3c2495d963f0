"""OpenSSH's sshd on a loopback port, serving git to one authorized deploy key.

A throwaway configuration: a generated Ed25519 host key, no PAM, `StrictModes no`, the test's
own AuthorizedKeysFile, key authentication only, for the user running the tests (root here,
allowed with keys only). It accepts GIT_PROTOCOL (protocol v2) unless `protocol_v2=False`.
The deploy key's line carries a forced command that logs each session (with git's packet
trace) before running the git command asked for, so tests can count the sessions and tell a
ref lookup from a fetch.
"""

from __future__ import annotations

import getpass
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.servers.debian import require_debian_package
from tests.servers.git_repo import BareRepo


def generate_key(path: Path, comment: str = "pmr-test") -> tuple[str, str]:
    """Make an unencrypted Ed25519 key pair; return (private key text, public key line)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.read_text(), path.with_suffix(".pub").read_text().strip()


class SSHServer:
    """sshd on 127.0.0.1:PORT; repositories live under `root`."""

    def __init__(self, root: Path, *, protocol_v2: bool = True) -> None:
        self.binary = require_debian_package("sshd", "openssh-server")
        require_debian_package("ssh-keygen", "openssh-client")
        self.root = root
        self.dir = root / "sshd"
        self.dir.mkdir(parents=True)
        self.user = getpass.getuser()
        self.port = _free_port()
        self.host_key_path = self.dir / "host_ed25519"
        _, self.host_public_key = generate_key(self.host_key_path, "host")
        self.deploy_key, self.deploy_public_key = generate_key(self.dir / "deploy")
        self.session_log = self.dir / "sessions.log"
        self.trace_log = self.dir / "packets.log"
        self._write_config(protocol_v2)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def known_hosts(self) -> str:
        """The known_hosts line for this server (host key type and base64 only)."""
        key_type, key_b64 = self.host_public_key.split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key_b64}\n"

    def url_of(self, name: str) -> str:
        """The ssh:// clone URL of repository `name`."""
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root}/{name}.git"

    def repo(self, name: str) -> BareRepo:
        """Create a bare repository served at `url_of(name)`."""
        return BareRepo(self.root / f"{name}.git")

    def sessions(self) -> list[str]:
        """The commands the sessions ran, one per session, in order."""
        if not self.session_log.exists():
            return []
        return self.session_log.read_text().splitlines()

    def fetches(self) -> int:
        """How many sessions asked for objects (a `want` line, v0, or a `fetch` command, v2)."""
        if not self.trace_log.exists():
            return 0
        text = self.trace_log.read_text()
        return text.count("< command=fetch") + text.count("< want ")

    def clear(self) -> None:
        """Forget the sessions logged so far."""
        self.session_log.unlink(missing_ok=True)
        self.trace_log.unlink(missing_ok=True)

    def _write_config(self, protocol_v2: bool) -> None:
        wrapper = self.dir / "git-session"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'echo "$SSH_ORIGINAL_COMMAND" >> {self.session_log}\n'
            f"export GIT_TRACE_PACKET={self.trace_log}\n"
            'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"\n'
        )
        wrapper.chmod(0o755)
        (self.dir / "authorized_keys").write_text(
            f'command="{wrapper}",no-pty,no-port-forwarding {self.deploy_public_key}\n'
        )
        (self.dir / "sshd_config").write_text(
            f"Port {self.port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key_path}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            f"AllowUsers {self.user}\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "LogLevel VERBOSE\n" + ("AcceptEnv GIT_PROTOCOL\n" if protocol_v2 else "")
        )

    def __enter__(self) -> Self:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self._process = subprocess.Popen(
            [
                self.binary,
                "-D",
                "-f",
                str(self.dir / "sshd_config"),
                "-E",
                str(self.dir / "sshd.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self._process.stderr.read().decode()}")  # type: ignore[union-attr]
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(7) == b"SSH-2.0":
                        return self
            except OSError:
                time.sleep(0.05)
        self.__exit__(None, None, None)
        raise RuntimeError(f"sshd did not start: {(self.dir / 'sshd.log').read_text()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
