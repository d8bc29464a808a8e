"""The outbound guard: what this company's people and agents write runs through it before any
event leaves the node (`node.guard.outbound`)."""
