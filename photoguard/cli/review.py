"""`photoguard review`: the photos held for a person to look at, from the command line (the same library as the
Photos to check page).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from photoguard.cli.common import get_home, home_option, main


@main.group()
def review() -> None:
    """Photos held for a person to look at."""


def _review_call(home_dir: str | None, call):
    """Run ``call(home, conn)`` with a review error shown as a message, not a traceback."""
    from photoguard.flow.review import ReviewError
    from photoguard.store.db import connect

    home = get_home(home_dir)
    conn = connect(home.database)
    try:
        return call(home, conn)
    except ReviewError as exc:
        raise click.ClickException(str(exc))
    finally:
        conn.close()


@review.command("list")
@home_option
def review_list(home_dir: str | None) -> None:
    """List photos waiting for review, oldest first, with the reason."""
    from photoguard.flow.review import review_queue
    from photoguard.store.localtime import when_words

    items = _review_call(home_dir, review_queue)
    if not items:
        click.echo("nothing waiting for review")
    for item in items:
        click.echo(f"{item.name}\t{item.source}\theld {when_words(item.held_at)}\t{item.reason}")


@review.command("show")
@home_option
@click.argument("name")
def review_show(home_dir: str | None, name: str) -> None:
    """Why NAME is held: each face, who it is, where, and what happens to it on each channel."""
    from photoguard.flow.review import review_detail
    from photoguard.store.localtime import when_words

    detail = _review_call(home_dir, lambda home, conn: review_detail(home, conn, name))
    item = detail.item
    click.echo(f"{item.name} ({item.source}), held {when_words(item.held_at)}: {item.reason}")
    if detail.problem:
        click.echo(f"  cannot be released: {detail.problem}")
    if not detail.faces:
        click.echo("  no faces")
    for face in detail.faces:
        click.echo(f"  face {face.number}: {face.reason}")
        for outcome in face.channels:
            click.echo(f"      {outcome.channel}: {'shown' if outcome.shown else 'obscured'} ({outcome.why})")
        if face.question:
            answer = f"photoguard review confirm {shlex.quote(item.name)} {face.number} {face.asked_about or 'CHILD'}"
            click.echo(f"      PhotoGuard asks: {face.question} To answer: {answer}")
    for edit in detail.edits:
        click.echo(f"  changed: {edit}")


@review.command("obscure")
@home_option
@click.argument("name")
@click.argument("face", type=int)
def review_obscure(home_dir: str | None, name: str, face: int) -> None:
    """Obscure face number FACE of NAME on every channel (numbers as `review show` prints them)."""
    from photoguard.flow.review import obscure_face, os_actor

    click.echo(_review_call(home_dir, lambda home, conn: obscure_face(home, conn, name, face, actor=os_actor())))


@review.command("confirm")
@home_option
@click.argument("name")
@click.argument("face", type=int)
@click.argument("child")
@click.option("--learn/--no-learn", default=True, show_default=True,
              help="Keep the face as one of CHILD's reference photos when it is good enough and alike them.")
def review_confirm(home_dir: str | None, name: str, face: int, child: str, learn: bool) -> None:
    """Face FACE of NAME is CHILD (an id from children.csv): shown only where CHILD's consent allows today.
    The answer teaches PhotoGuard: the face becomes one of CHILD's reference photos (see --no-learn)."""
    from photoguard.flow.review import confirm_face, os_actor

    click.echo(_review_call(home_dir, lambda home, conn: confirm_face(home, conn, name, face, child, actor=os_actor(),
                                                                      learn=learn)))


@review.command("box")
@home_option
@click.argument("name")
@click.argument("box", nargs=4, type=int, metavar="LEFT TOP RIGHT BOTTOM")
def review_box(home_dir: str | None, name: str, box: tuple[int, int, int, int]) -> None:
    """Obscure an area of NAME the detector missed (pixels of the upright photo) on every channel."""
    from photoguard.flow.review import add_box, os_actor

    click.echo(_review_call(home_dir, lambda home, conn: add_box(home, conn, name, box, actor=os_actor())))


@review.command("undo-edit")
@home_option
@click.argument("name")
def review_undo_edit(home_dir: str | None, name: str) -> None:
    """Take back your last change (obscure, confirm, box) to NAME."""
    from photoguard.flow.review import os_actor, undo_edit

    click.echo(_review_call(home_dir, lambda home, conn: undo_edit(home, conn, name, actor=os_actor())))


@review.command("preview")
@home_option
@click.argument("name")
@click.option("--channel", required=True, help="The channel to preview.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Where to write the JPEG.")
def review_preview(home_dir: str | None, name: str, channel: str, output: str) -> None:
    """Write exactly the picture that releasing NAME to CHANNEL today would publish."""
    from photoguard.flow.review import render_preview

    data = _review_call(home_dir, lambda home, conn: render_preview(home, conn, name, channel))
    Path(output).write_bytes(data)
    click.echo(f"{channel} preview of {name}: {output}")


@review.command("release")
@home_option
@click.argument("name")
@click.option("--channel", "channels", multiple=True, help="Only this channel (repeatable; default: every channel).")
def review_release(home_dir: str | None, name: str, channels: tuple[str, ...]) -> None:
    """Publish NAME: each channel gets the photo rendered again from the original, with every face
    obscured whose child has no consent for that channel today (audited)."""
    from photoguard.flow.release import release
    from photoguard.flow.review import os_actor

    done = _review_call(home_dir, lambda home, conn: release(home, conn, name, channels or None, actor=os_actor()))
    for channel, path in done.files.items():
        click.echo(f"{channel}: {path}")


@review.command("reject")
@home_option
@click.argument("name")
def review_reject(home_dir: str | None, name: str) -> None:
    """NAME is not to be shared: remove it from review (the original stays archived)."""
    from photoguard.flow.release import reject
    from photoguard.flow.review import os_actor

    item = _review_call(home_dir, lambda home, conn: reject(home, conn, name, actor=os_actor()))
    click.echo(f"rejected {item.name} ({item.source})")


@review.command("undo")
@home_option
def review_undo(home_dir: str | None) -> None:
    """Take back the last release or rejection while its outbox files are still uncollected."""
    from photoguard.flow.release import undo_last
    from photoguard.flow.review import os_actor

    done = _review_call(home_dir, lambda home, conn: undo_last(home, conn, actor=os_actor()))
    what = "release" if done.kind == "released" else "rejection"
    click.echo(f"{done.item.name} ({done.item.source}) is back in review; its {what} was taken back")
    for path in done.removed:
        click.echo(f"  removed from the outbox: {path}")
