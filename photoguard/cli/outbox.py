"""The outbox: `photoguard posted` (a photo was put on a channel) and `photoguard takedown` (posted photos that
must come down).
"""

from __future__ import annotations

from pathlib import Path

import click

from photoguard.cli.common import get_home, home_option, main


def _actor(by: str | None) -> str:
    if by:
        return by
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "manager"


def _takedown_lines(items) -> list[str]:
    lines = [f"take down: {len(items)} photo(s) posted or collected show a child whose consent has gone:"]
    lines += [f"  {item.describe()}" for item in items]
    lines.append("  once a photo is down, mark it: photoguard takedown done NUMBER")
    return lines


@main.command()
@home_option
@click.argument("name", required=False)
@click.option("--channel", default=None, help="The channel it was posted on (facebook, instagram, ...).")
@click.option("--by", "by", default=None, help="Who posted it (default: your login name).")
@click.option("--when", "when", type=click.DateTime(["%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"]), default=None,
              help="When it was posted, if not just now (YYYY-MM-DD HH:MM).")
@click.option("--list", "list_only", is_flag=True, help="Only list the photos in the outbox, with their numbers.")
def posted(home_dir: str | None, name: str | None, channel: str | None, by: str | None, when, list_only: bool) -> None:
    """Mark photo NAME (its file name in outbox/CHANNEL, or #NUMBER) as posted on CHANNEL.

    If a parent later withdraws consent, posted photos showing their child are on the take-down list.
    Collecting a photo (taking it out of the outbox folder) is noticed by itself.

    Example: photoguard posted picnic.jpg --channel facebook
    """
    from photoguard.flow.outbox import OutboxError, list_outbox, mark_posted, when_words
    from photoguard.store import db

    home = get_home(home_dir)
    conn = db.connect(home.database)
    try:
        if list_only or name is None:
            photos = list_outbox(home, conn, channel)
            if not photos:
                click.echo("the outbox is empty" if channel is None else f"outbox/{channel} is empty")
            for p in photos:
                state = f"posted {when_words(p.posted)} by {p.posted_by}" if p.posted else "not posted yet"
                source = f" (from {p.source})" if Path(p.source).stem != Path(p.name).stem else ""
                click.echo(f"#{p.id}  {p.channel}  {p.shown_name}{source}  in the outbox since {when_words(p.created)}  "
                           f"{state}")
            return
        if channel is None:
            raise click.ClickException(f"say where it was posted: photoguard posted {name} --channel "
                                       f"{home.settings.channels[0]} (channels: {', '.join(home.settings.channels)})")
        photo: int | str = int(name[1:]) if name.startswith("#") and name[1:].isdigit() else name
        item = mark_posted(home, conn, photo, channel, _actor(by), when)
    except OutboxError as exc:
        raise click.ClickException(str(exc))
    finally:
        conn.close()
    click.echo(f"#{item.id} {item.channel}: {item.shown_name} marked posted {when_words(item.posted)} by {item.posted_by}")


@main.group(invoke_without_command=True)
@home_option
@click.option("--child", "child_id", default=None, help="Only photos showing this child (roster id).")
@click.pass_context
def takedown(ctx: click.Context, home_dir: str | None, child_id: str | None) -> None:
    """Photos already posted or collected that show a child whose consent has gone: take them down.

    Each stays on the list until marked: photoguard takedown done NUMBER
    """
    ctx.obj = home_dir
    if ctx.invoked_subcommand is not None:
        return
    from photoguard.flow.outbox import takedown_list
    from photoguard.store import db

    home = get_home(home_dir)
    conn = db.connect(home.database)
    try:
        items = takedown_list(conn, child_id, home=home)
    finally:
        conn.close()
    if not items:
        click.echo("nothing to take down" + (f" for {child_id}" if child_id else ""))
        return
    for line in _takedown_lines(items):
        click.echo(line)


@takedown.command("done")
@home_option
@click.argument("numbers", nargs=-1, required=True)
@click.option("--by", "by", default=None, help="Who took it down (default: your login name).")
@click.pass_context
def takedown_done(ctx: click.Context, home_dir: str | None, numbers: tuple[str, ...], by: str | None) -> None:
    """Mark photos NUMBER... (from `photoguard takedown`) as taken down."""
    from photoguard.flow.outbox import OutboxError, mark_taken_down, takedown_list
    from photoguard.store import db

    home = get_home(home_dir or ctx.obj)
    conn = db.connect(home.database)
    try:
        listed = {item.file_id: item for item in takedown_list(conn)}
        for number in numbers:
            text = number.lstrip("#")
            if not text.isdigit() or int(text) not in listed:
                raise click.ClickException(f"{number} is not on the take-down list; `photoguard takedown` shows "
                                           "the numbers (it may be marked already).")
        for number in numbers:
            item = listed[int(number.lstrip("#"))]
            mark_taken_down(conn, item, _actor(by))
            click.echo(f"#{item.file_id} {item.channel}: {item.name} marked taken down")
    except OutboxError as exc:
        raise click.ClickException(str(exc))
    finally:
        conn.close()
