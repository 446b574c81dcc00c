"""Models trained in this repository (C2FDAN, BVMR, ResNet-50); each registers itself as an adapter."""
