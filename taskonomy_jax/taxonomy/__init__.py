"""Task affinities and the taxonomy: AHP normalisation, the BIP, published results."""
