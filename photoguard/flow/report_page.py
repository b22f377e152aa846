"""The report as one HTML file a manager can open anywhere: thumbnails with every face marked shown or obscured,
the outbox copies, failures and events, written next to the photos.
"""

from __future__ import annotations

import base64
import io
import os
import sqlite3
from datetime import date, datetime
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from photoguard.flow.outbox import TakedownItem, when_words
from photoguard.flow.report import (EVENT_WORDS, MIXED_COLOUR, OBSCURED_COLOUR, OUTCOME_WORDS, OUTPUT_THUMB_PX,
                                    THUMB_PX, ReportData, ReportFace, ReportOutput, ReportPhoto, e, gather_report)
from photoguard.photos.images import ImageError, load_thumbnail
from photoguard.store.home import Home


def _data_uri(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType
        return ImageFont.load_default()


def annotated_thumbnail(path: Path, faces: list[ReportFace], max_px: int = THUMB_PX) -> str | None:
    """The original as a small data: URI with every face boxed, numbered and labelled; None if unreadable."""
    try:
        img, scale = load_thumbnail(path, max_px)
    except (ImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    draw = ImageDraw.Draw(img)
    font = _font(13)
    boxes = [tuple(round(v * scale) for v in face.box) for face in faces]
    for face, (left, top, right, bottom) in zip(faces, boxes):
        draw.rectangle((left, top, max(left + 1, right), max(top + 1, bottom)), outline=face.colour, width=3)
    placed: list[tuple[int, int, int, int]] = []
    for number, (face, (left, top, right, bottom)) in enumerate(zip(faces, boxes), 1):
        text = f"{number} {face.label}"
        tl, tt, tr, tb = draw.textbbox((0, 0), text, font=font)
        tw, th = tr - tl + 6, tb - tt + 4
        x = min(max(0, left), max(0, img.width - tw))
        # Above the box, else below it; step down past labels already placed (overlapping faces).
        y = top - th if top - th >= 0 else bottom
        for _ in range(len(placed) + 1):
            y = min(max(0, y), max(0, img.height - th))
            clash = [p for p in placed if x < p[2] and p[0] < x + tw and y < p[3] and p[1] < y + th]
            if not clash:
                break
            y = max(p[3] for p in clash) + 1
        placed.append((x, y, x + tw, y + th))
        draw.rectangle((x, y, x + tw, y + th), fill=face.colour)
        draw.text((x + 3 - tl, y + 2 - tt), text, fill=(255, 255, 255), font=font)
    return _data_uri(img)


def plain_thumbnail(path: Path, max_px: int = OUTPUT_THUMB_PX) -> str | None:
    try:
        img, _ = load_thumbnail(path, max_px)
    except (ImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return _data_uri(img)


def _when(iso: str, with_day: bool) -> str:
    from photoguard.store.localtime import clock_words

    return clock_words(iso, with_day)


def _day(d: date) -> str:
    return d.strftime("%A %d %B %Y").replace(" 0", " ")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;background:#f3f4f6;color:#1f2937}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:20px;margin:32px 0 12px;border-bottom:2px solid #d1d5db;padding-bottom:4px}
.private{background:#fef3c7;border:1px solid #f59e0b;border-radius:8px;padding:8px 12px;margin:12px 0;font-size:14px}
.tiles{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}
.tile{background:#fff;border-radius:10px;padding:12px 18px;min-width:130px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.tile b{display:block;font-size:30px}
.tile.ok b{color:#16803c}.tile.warn b{color:#b45309}.tile.bad b{color:#b91c1c}
table{border-collapse:collapse;background:#fff}
td,th{border:1px solid #e5e7eb;padding:6px 10px;text-align:left;font-size:14px;vertical-align:top}
th{background:#f9fafb}
.card{background:#fff;border-radius:10px;padding:16px;margin:0 0 18px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.card.takedown{border:3px solid #b91c1c}.card.takedown h2{margin-top:0;color:#b91c1c}
.card.review{border-left:6px solid #d97706}.card.failed{border-left:6px solid #b91c1c}.card.cleared{border-left:6px solid #16803c}
.card h3{margin:0 0 4px;font-size:18px;word-break:break-all}
.meta{color:#6b7280;font-size:13px;margin-bottom:10px}
.reason{background:#fff7ed;border:1px solid #fdba74;border-radius:6px;padding:8px 10px;margin:8px 0;font-size:14px}
.badge{display:inline-block;border-radius:999px;padding:2px 10px;font-size:12px;font-weight:600;margin-left:8px;vertical-align:middle}
.badge.cleared,.badge.released{background:#dcfce7;color:#166534}.badge.review{background:#ffedd5;color:#9a3412}
.badge.rejected{background:#e5e7eb;color:#374151}
.images{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;max-width:320px}
figure img{display:block;border-radius:6px;border:1px solid #d1d5db}
figcaption{font-size:13px;color:#374151;margin-top:4px;overflow-wrap:anywhere}
figcaption small{display:block;color:#6b7280}
.original figcaption{color:#92400e}
.gone{width:200px;height:130px;display:flex;align-items:center;justify-content:center;text-align:center;background:#f3f4f6;
border:1px dashed #9ca3af;border-radius:6px;color:#6b7280;font-size:13px;padding:6px;box-sizing:border-box}
.faces{margin-top:12px}
.shown{color:#166534}.obscured{color:#b91c1c}
.dot{display:inline-block;width:12px;height:12px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.empty{background:#fff;border-radius:10px;padding:28px;font-size:18px;text-align:center}
ul.events li{margin:4px 0;font-size:14px}
"""


def _rgb_css(colour: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % colour


def _faces_table(photo: ReportPhoto, channels: tuple[str, ...]) -> str:
    if not photo.faces:
        return '<p class="faces">No faces found in this photo.</p>'
    head = "".join(f"<th>{e(c)}</th>" for c in channels)
    rows = []
    for number, face in enumerate(photo.faces, 1):
        who = e(face.label)
        if not face.child_id and face.identity and face.identity != face.label:
            who += f"<br><small>{e(face.identity)}</small>"
        cells = []
        for channel in channels:
            action, reason = face.actions.get(channel, ("obscured", "no decision recorded"))
            if action == "shown":
                cells.append(f'<td class="shown">&#10003; shown<br><small>{e(reason)}</small></td>')
            else:
                cells.append(f'<td class="obscured">&#10007; obscured<br><small>{e(reason)}</small></td>')
        dot = f'<span class="dot" style="background:{_rgb_css(face.colour)}"></span>'
        rows.append(f"<tr><td>{dot}{number}</td><td>{who}</td>{''.join(cells)}</tr>")
    return f'<table class="faces"><tr><th>#</th><th>Face</th>{head}</tr>{"".join(rows)}</table>'


def _figure(uri: str | None, caption: str, missing: str, css_class: str = "", alt: str = "") -> str:
    body = f'<img src="{uri}" alt="{e(alt)}">' if uri else f'<div class="gone">{e(missing)}</div>'
    return f'<figure class="{css_class}">{body}<figcaption>{caption}</figcaption></figure>'


def _photo_card(home: Home, photo: ReportPhoto, channels: tuple[str, ...], with_day: bool) -> str:
    root = home.root
    figures = []
    original = root / photo.archive_path if photo.archive_path else None
    uri = annotated_thumbnail(original, photo.faces) if original and original.exists() else None
    figures.append(_figure(uri, "Original (private, never shared)", "original no longer archived",
                           "original", f"original of {photo.source}"))
    if photo.outcome == "review":
        review = root / photo.review_path if photo.review_path else None
        uri = plain_thumbnail(review) if review and review.exists() else None
        figures.append(_figure(uri, "Held for review: every face not cleared for all channels is obscured",
                               "no longer in the review folder", alt=f"review copy of {photo.source}"))
    # Channels that got the very same picture share one image (most photos: all of them).
    same: dict[str, list[ReportOutput]] = {}
    for channel in channels:
        out = photo.outputs.get(channel)
        if out is None:
            if photo.outcome in ("cleared", "released"):
                figures.append(_figure(None, f"<b>{e(channel)}</b>", "not sent to this channel"))
            continue
        path = root / out.path
        if out.removed_at:
            figures.append(_figure(None, f"<b>{e(channel)}</b>", f"removed from the outbox {_when(out.removed_at, True)}"))
            continue
        if not path.exists():
            figures.append(_figure(None, f"<b>{e(channel)}</b>", "no longer in the outbox (collected)"))
            continue
        same.setdefault(out.file_sha256 or out.path, []).append(out)
    for outs in same.values():
        names = " &middot; ".join(f"<b>{e(o.channel)}</b>" for o in outs)
        files = "".join(f"<small>{e(o.path)}</small>" for o in outs)
        figures.append(_figure(plain_thumbnail(root / outs[0].path), f"Shared on {names}{files}", "cannot be read",
                               alt=f"{', '.join(o.channel for o in outs)} copy of {photo.source}"))
    reason = f'<div class="reason"><b>Why:</b> {e(photo.reason)}</div>' if photo.reason else ""
    kind = "review" if photo.outcome == "review" else "cleared"
    return (
        f'<section class="card {kind}"><h3>{e(photo.source)}'
        f'<span class="badge {e(photo.outcome)}">{e(OUTCOME_WORDS.get(photo.outcome, photo.outcome))}</span></h3>'
        f'<div class="meta">processed {e(_when(photo.finished_at, with_day))} &middot; {len(photo.faces)} face(s)</div>'
        f'{reason}<div class="images">{"".join(figures)}</div>{_faces_table(photo, channels)}</section>'
    )


def _takedown_section(items: list[TakedownItem]) -> str:
    rows = "".join(
        f"<tr><td>{item.file_id}</td><td>{e(item.name)}"
        f"{'' if Path(item.source).stem == Path(item.name).stem else f'<br><small>from {e(item.source)}</small>'}</td>"
        f"<td>{e(item.channel)}</td><td>{e(item.how)} {e(when_words(item.out_since))}</td>"
        f"<td>{'<br>'.join(f'{e(c.name)} <small>({e(c.reason)})</small>' for c in item.children)}</td></tr>"
        for item in items)
    return ('<section class="card takedown"><h2>Take these photos down</h2>'
            "<p>They were posted or collected before a parent withdrew consent (or it expired). Remove each "
            "from the channel, then mark it: <code>photoguard takedown done NUMBER</code>.</p>"
            "<table><tr><th>Number</th><th>Photo</th><th>Channel</th><th>Out since</th><th>Shows</th></tr>"
            f"{rows}</table></section>")


def render_report(home: Home, data: ReportData) -> str:
    """The whole page as a string."""
    today = date.today()
    single_day = data.until == data.since or (data.until is None and data.since >= today)
    with_day = not single_day
    if data.until is None:
        period = f"on {_day(data.since)}" if data.since >= today else f"since {_day(data.since)}"
    elif data.until == data.since:
        period = f"on {_day(data.since)}"
    else:
        period = f"from {_day(data.since)} to {_day(data.until)}"
    cleared = data.count("cleared", "released")
    review = data.count("review")
    rejected = data.count("rejected")
    faces = sum(len(p.faces) for p in data.photos)
    everywhere_obscured = sum(f.colour == OBSCURED_COLOUR for p in data.photos for f in p.faces)
    parts = [
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
        # No request of any kind may leave this page: it holds children's faces.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        "<meta name=\"referrer\" content=\"no-referrer\">",
        f"<title>PhotoGuard report {e(data.since.isoformat())}</title><style>{CSS}</style></head><body><main>",
        f"<h1>PhotoGuard: photos processed {e(period)}</h1>",
        f'<div class="meta">Made {e(datetime.now().strftime("%d %B %Y at %H:%M"))} from {e(home.root)}</div>',
        '<div class="private"><b>Private:</b> this page shows children\'s faces unobscured. '
        "Do not share, print or email it. Only the pictures in the outbox folders are cleared for sharing.</div>",
    ]
    if data.takedowns:
        parts.append(_takedown_section(data.takedowns))
    if not data.photos and not data.failed:
        parts.append(f'<div class="empty">No photos processed {e(period)}.</div>')
    else:
        tiles = [("ok", cleared, "cleared for sharing"), ("warn", review, "waiting for your review"),
                 ("bad", len(data.failed), "failed"), ("", faces, "faces found"),
                 ("bad" if everywhere_obscured else "", everywhere_obscured, "faces obscured on every channel")]
        if rejected:
            tiles.insert(2, ("", rejected, "rejected at review"))
        parts.append('<div class="tiles">' + "".join(
            f'<div class="tile {k}"><b>{n}</b>{e(label)}</div>' for k, n, label in tiles) + "</div>")
        rows = "".join(
            f"<tr><td>{e(c)}</td><td class=\"shown\">{s}</td><td class=\"obscured\">{o}</td></tr>"
            for c in data.channels for s, o in [data.face_counts(c)])
        parts.append(f"<table><tr><th>Channel</th><th>Faces shown</th><th>Faces obscured</th></tr>{rows}</table>")
    if data.in_progress:
        parts.append(f'<p class="reason">{data.in_progress} photo(s) are still being processed; '
                     "they will be in the next report.</p>")

    waiting = [p for p in data.photos if p.outcome == "review"]
    if waiting:
        parts.append("<h2>Waiting for your review</h2>"
                     "<p>These were not shared. Look at each one, then run <code>photoguard review release NAME</code> "
                     "or <code>photoguard review reject NAME</code>.</p>")
        parts += [_photo_card(home, p, data.channels, with_day) for p in waiting]
    if data.failed:
        items = "".join(f"<tr><td>{e(f.source)}</td><td>{e(_when(f.at, with_day))}</td><td>{e(f.reason)}</td></tr>"
                        for f in data.failed)
        parts.append("<h2>Could not be processed</h2><p>These were not shared; they are in the <code>failed</code> "
                     "folder with a note. Fix or re-export them and drop them into the inbox again.</p>"
                     f'<table><tr><th>File</th><th>When</th><th>Why</th></tr>{items}</table>')
    done = [p for p in data.photos if p.outcome != "review"]
    if done:
        parts.append("<h2>Photos</h2><p>Each photo: the original with every face boxed "
                     f'(<span class="shown">green</span> shown on every channel, <span style="color:{_rgb_css(MIXED_COLOUR)}">'
                     'orange</span> shown on some, <span class="obscured">red</span> obscured everywhere), '
                     "and the copy that went to each channel.</p>")
        parts += [_photo_card(home, p, data.channels, with_day) for p in done]
    if data.events:
        items = "".join(f"<li>{e(_when(ev.at, with_day))} &middot; "
                        f"{e(EVENT_WORDS.get(ev.kind, ev.kind.replace('_', ' ').capitalize()))}"
                        f"{': ' + e(ev.detail) if ev.detail else ''}</li>" for ev in data.events)
        parts.append(f'<h2>Also</h2><ul class="events">{items}</ul>')
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _report_path(home: Home, since: date) -> Path:
    folder = home.reports
    path = folder / f"report-{since.isoformat()}.html"
    if not path.exists():
        return path
    stamp = datetime.now().strftime("%H%M%S")
    path = folder / f"report-{since.isoformat()}-{stamp}.html"
    n = 2
    while path.exists():
        path = folder / f"report-{since.isoformat()}-{stamp}-{n}.html"
        n += 1
    return path


def write_report(home: Home, data: ReportData) -> Path:
    """Write the page owner-only under .photoguard/reports/ (never overwriting an earlier report)."""
    home.reports.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(home.reports, 0o700)
    page = render_report(home, data).encode("utf-8")
    tmp = home.reports / f".report-{os.getpid()}-{id(data)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(page)
            f.flush()
            os.fsync(f.fileno())
        while True:
            path = _report_path(home, data.since)
            try:
                os.link(tmp, path)  # unlike rename, never replaces a report made at the same moment
                break
            except FileExistsError:
                continue
    finally:
        tmp.unlink(missing_ok=True)
    return path


def build_report(home: Home, conn: sqlite3.Connection, since: date, until: date | None = None) -> Path:
    """Gather, render and write the report for photos finished from ``since`` (to ``until``, inclusive)."""
    return write_report(home, gather_report(home, conn, since, until))
