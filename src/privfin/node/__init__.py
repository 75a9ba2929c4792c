"""A party's node: federation endpoints over mutual TLS, a durable mailbox, a minimal job runner,
and the local cluster used by tests and the demo."""
