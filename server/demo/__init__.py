"""`bondwatch-demo`: the whole system on one machine, and the broker launcher tests share."""
