"""Models: the GAN and VAE networks, and trained models as self-describing folders."""
