"""The use cases, one module per API resource: each owns its transactions, takes the caller and the time."""
