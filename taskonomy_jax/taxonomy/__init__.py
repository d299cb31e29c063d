"""The taxonomy: AHP affinities, the binary integer program and the transfer-learning API."""
