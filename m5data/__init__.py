"""m5data: build M5Product-style five-modality e-commerce datasets."""

__version__ = "0.1.0"
