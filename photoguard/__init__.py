"""PhotoGuard: obscure every child without consent before nursery photos are shared."""
__version__ = "0.1.0"
