"""Kernel side of execution lineage: the BPF program, its bcc loader and the decoding of its events."""
