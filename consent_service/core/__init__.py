"""The pure parts: decisions, policies, the audit chain, receipts, vocabulary. No storage, no Flask."""
