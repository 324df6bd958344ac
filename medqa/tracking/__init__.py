"""Every Weights & Biases call: runs, tables, alerts, history replay, the sweep agent's command line."""
