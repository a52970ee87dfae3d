"""Code both sides import: the spectral math and the wire protocol. Only stdlib, numpy and msgpack."""
