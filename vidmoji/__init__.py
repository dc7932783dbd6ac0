"""vidmoji: turn a video of a face into an emoji-avatar video."""

__version__ = "0.1.0"
