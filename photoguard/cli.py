import click

@click.group()
def main() -> None:
    """PhotoGuard."""
