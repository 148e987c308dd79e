"""The live window: sources, state, keys, the network worker, panes, the UI loop."""
