"""Yosys figures: of single nodes beside the folding's estimates (``nodes``), and of an emitted design's HDL,
node by node, FINN's own RTL included (``hdl``; FINN-NOTES §4b); what the resource models of fracskip's units,
fitted to Yosys, share (``fitting``)."""
