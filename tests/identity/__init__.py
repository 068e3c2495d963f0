"""The identity providers' clients against real servers (slapd) and imitations."""
