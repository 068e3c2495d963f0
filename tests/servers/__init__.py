"""Real servers for the tests (OpenLDAP's slapd, Samba's AD DC, git's http-backend, sshd).

Each runs as a child process of the test session on a loopback port, from a throwaway
configuration under pytest's temporary directory. `require_debian_package` makes the binary
present: the suite installs what is missing from Debian itself, so a fresh clone's test command
(and CI) runs these tests instead of skipping them.
"""
