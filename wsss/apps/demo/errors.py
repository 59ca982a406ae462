"""The demo's refusal of a run before its steps: a wrong flag, a missing checkpoint or dataset."""


class RefusedRun(Exception):
    """The message is printed as ``error: <message>`` on stderr and the demo exits with status 2."""
