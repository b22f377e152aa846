"""What came of Check again, in the nursery's words: one sentence per photo and one for the lot
("3 photos checked again: Grace now shows in 2 (Facebook); 1 was already posted and was left as it was").

Works on the photos as recorded in the outcome file (``reprocess.Redo`` as a dict), so the words can be
made again from the file alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# Why a photo was left as it was (reprocess.Redo.why): (one photo, several photos), each after its count.
LEFT = {
    "posted": ("was already posted and was left as it was", "were already posted and were left as they were"),
    "collected": ("had already been taken from Ready to post and was left as it was",
                  "had already been taken from Ready to post and were left as they were"),
    "review": ("is waiting in Photos to check: decide on it there", "are waiting in Photos to check: decide on them there"),
    "decided": ("was released or set aside by you and was left as you decided",
                "were released or set aside by you and were left as you decided"),
    "purged": ("is too old: its original is no longer kept", "are too old: their originals are no longer kept"),
    "changed": ("was changed in the outbox folder by someone and was left as it was",
                "were changed in the outbox folder by someone and were left as they were"),
    "unfinished": ("is not finished by PhotoGuard yet", "are not finished by PhotoGuard yet"),
    "failed": ("could not be made again (its original is kept: press Check again to try once more)",
               "could not be made again (their originals are kept: press Check again to try once more)"),
}
ONE_PHOTO = {
    "posted": "it was already posted, so it was left as it was (a photo out in the world cannot be replaced)",
    "collected": "it had already been taken from Ready to post, so it was left as it was",
    "review": "it is waiting in Photos to check: decide on it there",
    "decided": "you released or set it aside in Photos to check, so it was left as you decided",
    "purged": "it is too old: its original is no longer kept, so it cannot be checked again",
    "changed": ("its copy in the outbox folder was changed by someone, so it was left as it was; move that "
                "file out of the outbox folder, then press Check again"),
    "unfinished": "PhotoGuard has not finished with it yet; try again in a minute",
    "failed": "it could not be made again; its original is kept safe — press Check again to try once more",
}


def and_list(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1] if words else ""


def _channels(channels: Sequence[str]) -> str:
    return and_list([c.capitalize() for c in channels])


def _shown(pairs) -> dict[str, set[str]]:
    return {channel: set(who) for channel, who in pairs}


def changes(item: Mapping) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """({child: channels she is shown on now and was not}, {child: channels she is obscured on now and was not})."""
    before, after = _shown(item.get("before") or ()), _shown(item.get("after") or ())
    gained: dict[str, list[str]] = {}
    lost: dict[str, list[str]] = {}
    for channel in sorted(set(before) | set(after)):
        for child in sorted(after.get(channel, set()) - before.get(channel, set())):
            gained.setdefault(child, []).append(channel)
        for child in sorted(before.get(channel, set()) - after.get(channel, set())):
            lost.setdefault(child, []).append(channel)
    return gained, lost


def _name(names: Mapping[str, str], child: str) -> str:
    return names.get(child) or child


def photo_line(item: Mapping, names: Mapping[str, str]) -> str:
    """'picnic.jpg: checked again — Grace now shows on Facebook.'"""
    name = item["source"]
    if item["outcome"] == "review":
        return f"{name}: checked again — it now needs you: it is in Photos to check."
    if item["outcome"] != "cleared":
        return f"{name}: {ONE_PHOTO.get(item.get('why') or 'failed', ONE_PHOTO['failed'])}."
    gained, lost = changes(item)
    said = [f"{_name(names, c)} now shows on {_channels(chs)}" for c, chs in gained.items()]
    said += [f"{_name(names, c)} is now obscured on {_channels(chs)}" for c, chs in lost.items()]
    return f"{name}: checked again — {'; '.join(said) if said else 'it came out as before'}."


def summary(items: Sequence[Mapping], names: Mapping[str, str]) -> str:
    """One sentence for everything checked again."""
    if not items:
        return "No photo to check again."
    if len(items) == 1:
        return photo_line(items[0], names)
    parts = []
    gains: dict[str, tuple[int, set[str]]] = {}
    losses: dict[str, tuple[int, set[str]]] = {}
    same = review = 0
    left: dict[str, int] = {}
    for item in items:
        if item["outcome"] == "review":
            review += 1
        elif item["outcome"] != "cleared":
            why = item.get("why") or "failed"
            left[why if why in LEFT else "failed"] = left.get(why if why in LEFT else "failed", 0) + 1
        else:
            gained, lost = changes(item)
            same += not gained and not lost
            for found, into in ((gained, gains), (lost, losses)):
                for child, channels in found.items():
                    count, chs = into.get(child, (0, set()))
                    into[child] = (count + 1, chs | set(channels))
    for child, (count, chs) in sorted(gains.items(), key=lambda kv: _name(names, kv[0])):
        parts.append(f"{_name(names, child)} now shows in {count} ({_channels(sorted(chs))})")
    for child, (count, chs) in sorted(losses.items(), key=lambda kv: _name(names, kv[0])):
        parts.append(f"{_name(names, child)} is now obscured in {count} ({_channels(sorted(chs))})")
    if same:
        parts.append(f"{same} came out as before")
    if review:
        parts.append(f"{review} now need{'s' if review == 1 else ''} you: "
                     f"{'it is' if review == 1 else 'they are'} in Photos to check")
    for why, (one, many) in LEFT.items():
        if left.get(why):
            parts.append(f"{left[why]} {one if left[why] == 1 else many}")
    return f"{len(items)} photos checked again: {'; '.join(parts)}."
