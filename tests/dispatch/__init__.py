"""The packed-charm level: the staged charm's ./dispatch run as a Juju 3.6 agent runs it."""
