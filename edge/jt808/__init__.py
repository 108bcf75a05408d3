"""`bondwatch-jt808`: cellular JT/T 808 e-locks and trackers → the contract.

See docs/jt808-gateway.md.
"""
