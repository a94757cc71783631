"""Yosys figures of the nodes of a folded design, beside the folding's estimates (FINN-NOTES §4b)."""
