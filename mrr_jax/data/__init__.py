"""Face-SR data: resizing, degradation and augmentation, sources, and the input pipeline."""
