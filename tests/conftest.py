"""Session fixtures every test directory may use: the real servers from tests/servers/.

Registered once, here, so that a session-scoped server starts at most once per test session
whichever directories use it (Samba's fixed ports could not host a second one).
"""

from tests.servers.samba import samba_dc
from tests.servers.slapd import slapd_server

__all__ = ["samba_dc", "slapd_server"]
