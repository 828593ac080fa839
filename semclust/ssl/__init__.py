"""Semi-supervised learning engine: networks, augmentation, trainer and algorithms."""
