"""The taxonomy: task affinities, the binary integer program and the transfer-learning API."""
