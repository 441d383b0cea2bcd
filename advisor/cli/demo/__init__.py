"""The built-in example: support messages → strict JSON tickets, end to end on a tiny local model."""
