"""`taskonomy serve`: the transfer-API page, the live demo and the same API as JSON over HTTP."""
