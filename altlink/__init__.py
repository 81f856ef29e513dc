"""altlink: link-stage collection, validation and patching of AArch64 alternatives."""

__version__ = "0.1.0"
