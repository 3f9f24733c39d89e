"""Contract suites: one abstract suite per port (``streams.ports``), one subclass per adapter.

A suite is a class named ``…Contract`` (not collected by itself) whose
``make_adapter`` is abstract; ``Test…`` subclasses bind it to an adapter, so
every adapter is held to the same spec.
"""
