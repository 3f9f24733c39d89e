"""Building blocks of the Kafka runtime (``jiahe worker``).

The faust app itself lives in :mod:`streams.kafka.app`; these modules keep the parts
that need no broker (batch computation, deadline index, settings) apart from the parts
that adapt faust (the batch consumer), so each can be read and tested on its own.
"""
