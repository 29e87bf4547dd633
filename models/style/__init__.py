"""Style networks: the style autoencoder and the photographer-embedding model."""
