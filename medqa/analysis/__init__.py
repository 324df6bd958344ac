"""What people look at: the per-run report and plot, the multi-run comparison (table, plot, HTML)."""
