"""Training: the compiled loop, the GAN and VAE tasks, checkpoints, devices."""
