"""The consent_service benchmark: ``make bench`` (``python -m bench``), see docs/performance.md.

Loopback only, bounded in time; prints one JSON document and writes it to
bench/results/latest.json.
"""
