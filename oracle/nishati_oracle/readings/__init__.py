"""Meter readings, from the meter to the chain: signed by the meter, verified and stored by the
oracle, attested on chain in batches.

``ingest`` says what every way in hands the pipeline and gets back; ``mqtt`` is the way in over
MQTT; ``pipeline`` verifies each batch and stores the accepted readings before answering,
asking ``registry`` whose each meter is and ``clock`` what time the chain says; ``store`` holds
each meter's progress and every accepted reading; ``batcher`` attests stored readings on chain.
"""
