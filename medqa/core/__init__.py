"""What every layer shares: errors, package paths, the run-folder layout, distributed ranks, labels, redaction."""
